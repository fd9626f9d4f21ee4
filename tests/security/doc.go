//go:build netns

// Package security is the security test tier (tests/run.sh: tier
// security, go test -tags netns): real `sand serve` processes in network
// namespaces with real tgtd and real initiators, each test showing one way
// past a role refused or fixed: imports confined to sand's pool, secrets
// kept out of reach, and the like. It needs root and the netns tier's
// tools; under CI=true a missing one fails the test.
package security
