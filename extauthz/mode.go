package extauthz

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// Policy modes (policy.mode, and the route's context extension
// "stepup_mode", header x-stepup-mode in Envoy's HTTP mode).
const (
	ModeEnforce = "enforce"
	ModeDryRun  = "dry-run"
)

// DryRunHeader tells the application, on a request let through in
// dry-run mode, what stepup would have done (a decision kind such as
// "mfa_required"); client copies are always removed.
const DryRunHeader = "x-stepup-dry-run"

// dryRun reports whether r is decided in dry-run mode: the route's
// stepup_mode when it names a mode, else the configured one. An unknown
// route mode is enforcement.
func (s *Server) dryRun(r *Request) bool {
	switch r.ContextExtensions["stepup_mode"] {
	case ModeDryRun:
		return true
	case "":
		return s.dryRunAll
	}
	return false
}

// decideMode is decide, then, in dry-run mode, any decision but an allow
// becomes an allow that records what would have happened (Would, the
// DryRunHeader upstream). The identity headers are those of the user if
// one was identified, else empty: they are overwritten either way, so a
// client can never forge them.
func (s *Server) decideMode(ctx context.Context, r *Request) Decision {
	d := s.decide(ctx, r)
	if d.Kind == Allow || !s.dryRun(r) {
		return d
	}
	a := Decision{Kind: Allow, Reason: d.Reason, Rule: d.Rule, User: d.User, DryRun: true, Would: d.Kind}
	s.identityHeaders(&a, r, &Identity{User: d.User}, nil)
	a.setHeader(DryRunHeader, d.Kind.String())
	return a
}

// decisionIDs makes decision ids: a random prefix per process and a
// counter, so that they are unique without a random read per Check.
type decisionIDs struct {
	prefix string
	n      atomic.Uint64
}

func newDecisionIDs() *decisionIDs {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &decisionIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

func (g *decisionIDs) next() string {
	var buf [40]byte
	out := append(buf[:0], g.prefix...)
	return string(strconv.AppendUint(out, g.n.Add(1), 10))
}
