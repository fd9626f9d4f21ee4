package client

import (
	"bytes"
	"context"
	"net/http"
	"net/url"

	"github.com/sand-appliance/sand/ui"
)

// ImportOptions are the choices of an ietd.conf import.
type ImportOptions struct {
	// Group is the initiator group of the new LUNs.
	Group string
	// DryRun only reports what would be made.
	DryRun bool
	// CopyFrom names Path= values of the file whose data the box copies
	// into the new LUNs.
	CopyFrom []string
}

// ImportIETD sends an ietd.conf to become new LUNs of the box's pool. An
// import that copies data answers once the copy is done, so HTTP.Timeout
// bounds the copy: a caller copying big LUNs sets it to 0 and ends the
// import with ctx instead (the box then changes nothing).
func (c *Client) ImportIETD(ctx context.Context, conf []byte, o ImportOptions) ([]ui.ImportView, error) {
	q := url.Values{}
	if o.Group != "" {
		q.Set("group", o.Group)
	}
	if o.DryRun {
		q.Set("dry_run", "true")
	}
	for _, p := range o.CopyFrom {
		q.Add("copy_from", p)
	}
	var l []ui.ImportView
	return l, c.do(ctx, http.MethodPost, "/api/v1/import?"+q.Encode(), bytes.NewReader(conf), "text/plain", &l)
}
