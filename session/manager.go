package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"
)

// Defaults for the zero values of [Config]. They are the defaults of the
// configuration's sessions section, which the server passes explicitly; a
// test in cmd/stepup keeps the two equal.
const (
	DefaultMFASessionTTL  = 12 * time.Hour
	DefaultMFASessionIdle = time.Hour
	DefaultRememberTTL    = 30 * 24 * time.Hour
	DefaultStateTTL       = time.Hour
	DefaultAssertionTTL   = 2 * time.Minute
	DefaultCookiePrefix   = "stepup"
	// DefaultMaxDevices is how many remembered browsers a user keeps by
	// default; remembering one more forgets the oldest.
	DefaultMaxDevices = 20
)

// Limits checked by [NewManager].
const (
	// MaxCookieTTL is the longest MFA session or remember-browser lifetime;
	// browsers cap cookie lifetimes at 400 days.
	MaxCookieTTL = 400 * 24 * time.Hour
	// MaxStateTTL is the longest transaction state lifetime: three days,
	// Auth0's limit for a redirect rule's state.
	MaxStateTTL = 72 * time.Hour
	// MaxMaxDevices bounds [Config.MaxDevicesPerUser].
	MaxMaxDevices = 1000
	// MaxAssertionTTL is the longest identity assertion lifetime.
	MaxAssertionTTL = time.Hour
	// TouchInterval is how often, at most, the last-seen time of an MFA
	// session or the last-used time of a remembered browser is written.
	// Idle timeouts must be longer than twice this.
	TouchInterval = time.Minute
)

// NoTimeout, as [Config.MFASessionIdle] or [Config.RememberIdle], turns the
// idle timeout off. Any negative value does, and a zero RememberIdle.
const NoTimeout time.Duration = -1

// Config configures a [Manager]. Zero durations take the Default values.
type Config struct {
	// Keys sign and verify tokens: the first signs, all verify. The
	// transaction states that tokens carry are encrypted with keys derived
	// from these (the first encrypts, all decrypt). Required.
	Keys []Key
	// Store keeps MFA sessions, devices, the used-markers of transaction
	// states (and states too large for their token). Required.
	Store Store
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// MFASessionTTL bounds an MFA session's lifetime (default 12 h).
	MFASessionTTL time.Duration
	// MFASessionIdle ends an MFA session unused for this long (default
	// 1 h); negative turns the idle timeout off.
	MFASessionIdle time.Duration
	// RememberTTL bounds a remembered browser's lifetime (default 30 days).
	RememberTTL time.Duration
	// RememberIdle forgets a remembered browser unused for this long
	// (Auth0 used 7 days); zero or negative turns it off, so the browser is
	// remembered for the full RememberTTL.
	RememberIdle time.Duration
	// MaxDevicesPerUser caps the remembered browsers of one user (default
	// [DefaultMaxDevices], at most [MaxMaxDevices]): remembering one more
	// forgets the oldest, so that a user (or a script with their identity)
	// cannot pile up device records without bound.
	MaxDevicesPerUser int
	// StateTTL bounds a transaction state's lifetime (default 1 h, at most
	// [MaxStateTTL]).
	StateTTL time.Duration
	// AssertionTTL bounds an identity assertion's lifetime (default 2 min).
	AssertionTTL time.Duration

	// Development drops the Secure attribute and the __Host- name prefix
	// from cookies so that they work over plain HTTP. Only for local
	// development: never set it in production.
	Development bool
	// CookiePrefix starts every cookie name (default "stepup"): 1 to 32
	// characters of [A-Za-z0-9_-].
	CookiePrefix string

	// Logger receives rejections (reason only, never a token); nil
	// discards.
	Logger *slog.Logger
}

// Manager issues and verifies stepup's cookies and tokens. It is safe for
// concurrent use.
type Manager struct {
	kr        *Keyring
	stateKeys *stateKeys // encrypt transaction states; from the same keys
	store     Store
	now       func() time.Time
	log       *slog.Logger

	mfaTTL, mfaIdle           time.Duration
	rememberTTL, rememberIdle time.Duration
	stateTTL, assertionTTL    time.Duration
	maxDevices                int

	dev                              bool
	mfaName, rememberName, stateName string
}

// NewManager checks cfg, fills in defaults and returns a Manager. Every
// problem is reported at once.
func NewManager(cfg Config) (*Manager, error) {
	var errs []error
	kr, err := NewKeyring(cfg.Keys)
	if err != nil {
		errs = append(errs, err)
	}
	var sk *stateKeys
	if err == nil {
		if sk, err = newStateKeys(cfg.Keys); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.Store == nil {
		errs = append(errs, errors.New("no store"))
	}
	m := &Manager{
		kr:           kr,
		stateKeys:    sk,
		store:        cfg.Store,
		now:          cfg.Now,
		log:          cfg.Logger,
		mfaTTL:       orDefault(cfg.MFASessionTTL, DefaultMFASessionTTL),
		mfaIdle:      orDefault(cfg.MFASessionIdle, DefaultMFASessionIdle),
		rememberTTL:  orDefault(cfg.RememberTTL, DefaultRememberTTL),
		rememberIdle: max(cfg.RememberIdle, 0),
		stateTTL:     orDefault(cfg.StateTTL, DefaultStateTTL),
		assertionTTL: orDefault(cfg.AssertionTTL, DefaultAssertionTTL),
		maxDevices:   cfg.MaxDevicesPerUser,
		dev:          cfg.Development,
	}
	if m.maxDevices == 0 {
		m.maxDevices = DefaultMaxDevices
	}
	if m.maxDevices < 1 || m.maxDevices > MaxMaxDevices {
		errs = append(errs, fmt.Errorf("max devices per user %d: must be between 1 and %d", m.maxDevices, MaxMaxDevices))
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	checkTTL := func(name string, d, max time.Duration) {
		if d < time.Second || d > max {
			errs = append(errs, fmt.Errorf("%s %v: must be between 1s and %v", name, d, max))
		}
	}
	checkTTL("mfa session ttl", m.mfaTTL, MaxCookieTTL)
	checkTTL("remember ttl", m.rememberTTL, MaxCookieTTL)
	checkTTL("state ttl", m.stateTTL, MaxStateTTL)
	checkTTL("assertion ttl", m.assertionTTL, MaxAssertionTTL)
	checkIdle := func(name string, d *time.Duration) {
		switch {
		case *d <= 0:
			*d = 0 // off
		case *d <= 2*TouchInterval:
			errs = append(errs, fmt.Errorf("%s %v: must be longer than %v, or negative to turn it off", name, *d, 2*TouchInterval))
		}
	}
	checkIdle("mfa session idle timeout", &m.mfaIdle)
	checkIdle("remember idle timeout", &m.rememberIdle)
	prefix := cfg.CookiePrefix
	if prefix == "" {
		prefix = DefaultCookiePrefix
	}
	if !validKeyID(prefix) {
		errs = append(errs, fmt.Errorf("cookie prefix %q: must be 1-32 characters of [A-Za-z0-9_-]", prefix))
	}
	if !m.dev {
		prefix = "__Host-" + prefix
	}
	m.mfaName, m.rememberName, m.stateName = prefix+"_mfa", prefix+"_remember", prefix+"_state"
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("session manager: %w", err)
	}
	return m, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Keyring returns the manager's keyring, for other signed artefacts (give
// them their own purpose).
func (m *Manager) Keyring() *Keyring { return m.kr }

// CookieNames returns the names of the MFA session, remember-browser and
// transaction state cookies: "__Host-stepup_mfa", "__Host-stepup_remember"
// and "__Host-stepup_state" by default, without "__Host-" in development.
func (m *Manager) CookieNames() (mfa, remember, state string) {
	return m.mfaName, m.rememberName, m.stateName
}

// OwnsCookie reports whether name is one of the manager's cookies, so that
// they can be removed before a request goes upstream.
func (m *Manager) OwnsCookie(name string) bool {
	return name == m.mfaName || name == m.rememberName || name == m.stateName
}

// Cookie returns a cookie with the manager's attributes: HttpOnly, Secure
// unless in development, SameSite=Lax, Path=/, no Domain (as "__Host-"
// requires), Max-Age and Expires from maxAge.
func (m *Manager) Cookie(name, value string, maxAge time.Duration) *http.Cookie {
	secs := int(maxAge / time.Second)
	if secs < 1 {
		secs = 1
	}
	return &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   secs,
		Expires:  m.now().Add(time.Duration(secs) * time.Second).UTC(),
		HttpOnly: true,
		Secure:   !m.dev,
		SameSite: http.SameSiteLaxMode,
	}
}

// StateCookie returns a cookie named like the state cookie carrying token,
// living as long as a transaction state.
func (m *Manager) StateCookie(token string) *http.Cookie {
	return m.Cookie(m.stateName, token, m.stateTTL)
}

// ClearCookie returns a cookie that makes the browser delete the named
// cookie (empty value, Max-Age<0) with the attributes it was set with.
func (m *Manager) ClearCookie(name string) *http.Cookie {
	return &http.Cookie{
		Name:     name,
		Path:     "/",
		MaxAge:   -1,
		Expires:  time.Unix(0, 0).UTC(),
		HttpOnly: true,
		Secure:   !m.dev,
		SameSite: http.SameSiteLaxMode,
	}
}

// Sessions is what [Manager.ListUser] returns: the live MFA sessions and
// remembered browsers of one user, oldest first.
type Sessions struct {
	MFA     []MFASession
	Devices []Device
}

// ListUser returns the user's unexpired MFA sessions and remembered
// browsers. Records past their idle timeout are left out.
func (m *Manager) ListUser(ctx context.Context, user string) (Sessions, error) {
	recs, err := m.store.ListUser(ctx, user, "")
	if err != nil {
		return Sessions{}, storeErr("list sessions", err)
	}
	now := m.now()
	var out Sessions
	for _, r := range recs {
		var err error
		switch r.Kind {
		case KindMFA:
			s, rec, derr := m.decodeMFA(user, r.ID, r.Value, now)
			if errors.Is(derr, ErrOutdated) {
				// Listed so that it can be revoked; it proves nothing.
				s, derr = rec.session(user, r.ID), nil
			}
			if err = derr; err == nil && !m.mfaStale(s, now) {
				out.MFA = append(out.MFA, s)
			}
		case KindDevice:
			var d Device
			if d, _, err = decodeDeviceRecord(user, r.ID, r.Value); (err == nil || errors.Is(err, ErrOutdated)) && !m.deviceStale(d, now) {
				// An outdated one is listed so that it can be revoked; it
				// proves nothing.
				out.Devices = append(out.Devices, d)
			}
			if errors.Is(err, ErrOutdated) {
				err = nil
			}
		}
		if err != nil {
			m.log.LogAttrs(ctx, slog.LevelWarn, "corrupt session record skipped",
				slog.String("user", user), slog.String("kind", r.Kind), slog.String("id", r.ID))
		}
	}
	slices.SortStableFunc(out.MFA, func(a, b MFASession) int { return a.IssuedAt.Compare(b.IssuedAt) })
	slices.SortStableFunc(out.Devices, func(a, b Device) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// Revoke ends the user's MFA session or remembered browser with the given
// id, or, when id is "", all of the user's MFA sessions and remembered
// browsers. It returns how many it ended; an unknown id ends none and is
// not an error.
func (m *Manager) Revoke(ctx context.Context, user, id string) (int, error) {
	// Only sessions and devices: the user's enrolled factors (other kinds)
	// are not revoked here.
	total := 0
	for _, kind := range []string{KindMFA, KindDevice} {
		n, err := m.store.DeleteUser(ctx, user, kind, id)
		total += n
		if err != nil {
			return total, storeErr("revoke", err)
		}
	}
	return total, nil
}

// Reason returns a short, stable code for a verification error, for logs
// and metrics: "no_cookie", "malformed", "unknown_key", "bad_signature",
// "wrong_purpose", "wrong_user", "wrong_session", "expired", "revoked", "outdated",
// "not_found", "store_unavailable", "invalid_argument", or "error".
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrStoreUnavailable):
		return "store_unavailable"
	case errors.Is(err, ErrNoCookie):
		return "no_cookie"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrUnknownKey):
		return "unknown_key"
	case errors.Is(err, ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, ErrWrongPurpose):
		return "wrong_purpose"
	case errors.Is(err, ErrWrongUser):
		return "wrong_user"
	case errors.Is(err, ErrWrongSession):
		return "wrong_session"
	case errors.Is(err, ErrExpired):
		return "expired"
	case errors.Is(err, ErrRevoked):
		return "revoked"
	case errors.Is(err, ErrOutdated):
		return "outdated"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrInvalidArgument):
		return "invalid_argument"
	default:
		return "error"
	}
}

// reject logs a rejected token (reason only) and returns err.
func (m *Manager) reject(ctx context.Context, purpose, user string, err error) error {
	if errors.Is(err, ErrStoreUnavailable) {
		return err // not a verdict on the token; the caller reports it
	}
	level := slog.LevelInfo
	// Routine ends of a cookie's life are not worth a line on every
	// request; forged, tampered and foreign cookies are.
	if errors.Is(err, ErrNoCookie) || errors.Is(err, ErrExpired) || errors.Is(err, ErrRevoked) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrOutdated) {
		level = slog.LevelDebug
	}
	if m.log.Enabled(ctx, level) {
		m.log.LogAttrs(ctx, level, "session token rejected",
			slog.String("purpose", purpose),
			slog.String("reason", Reason(err)),
			slog.String("user", user))
	}
	return err
}

// storeErr wraps a store error so that callers see ErrStoreUnavailable
// for anything but a clean not-found or bad-argument answer.
func storeErr(op string, err error) error {
	if errors.Is(err, ErrStoreUnavailable) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidArgument) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %w", op, ErrStoreUnavailable, err)
}

// newID returns 128 random bits in hex.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// claims is the JSON payload of MFA session, remember and state tokens.
type claims struct {
	User   string `json:"u"`
	ID     string `json:"id"`
	Token  string `json:"t,omitempty"` // remember: base64url device token
	Issued int64  `json:"iat"`
	Expiry int64  `json:"exp"`
}

// expired reports whether a unix-seconds expiry has passed at now.
func expired(exp int64, now time.Time) bool {
	return !now.Before(time.Unix(exp, 0))
}
