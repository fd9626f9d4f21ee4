package failover

import "context"

// WithHandOver marks ctx as the context of a hand-over promotion (see
// HandingOver); the controller sets it for Decision.HandOver.
func WithHandOver(ctx context.Context) context.Context {
	return context.WithValue(ctx, handOverKey{}, true)
}
