package session

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"
)

// Store is the storage contract behind sessions, remembered browsers,
// transaction state, single-use ids and rate-limit counters. Implementations
// live in the subpackages memstore, boltstore and redisstore, and all of them
// pass the conformance suite in storetest.
//
// All methods are safe for concurrent use. Values passed in and returned are
// copied: the caller may reuse or modify its slices afterwards. Every TTL
// must be positive. Errors from the backend are wrapped with
// [ErrStoreUnavailable]; bad arguments yield [ErrInvalidArgument]. After
// Close every method except Close returns [ErrStoreUnavailable].
//
// Plain keys (Get, Put, …) and per-user records (PutUser, …) live in separate
// namespaces.
type Store interface {
	// Get returns the value stored under key, or ErrNotFound when it is
	// missing or expired.
	Get(ctx context.Context, key string) ([]byte, error)

	// Put stores val under key for ttl, replacing any previous value.
	Put(ctx context.Context, key string, val []byte, ttl time.Duration) error

	// PutIfAbsent stores val under key for ttl only when no unexpired value
	// is present, and reports whether it did. It is atomic: of several
	// concurrent callers exactly one gets true.
	PutIfAbsent(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error)

	// Consume atomically returns and deletes the value under key. It returns
	// ErrNotFound when the key is missing, expired or already consumed; of N
	// concurrent consumers exactly one gets the value.
	Consume(ctx context.Context, key string) ([]byte, error)

	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error

	// Incr atomically increments the counter under key and returns the new
	// value. A counter that does not exist is created with the value 1 and
	// expires window later; later increments do not extend it (a fixed
	// window). Get on a counter returns its decimal value. Keys used with
	// Incr must not be written with Put.
	Incr(ctx context.Context, key string, window time.Duration) (int64, error)

	// Decr atomically takes one back from a counter made by Incr and
	// returns the new value. It never goes below zero, never creates a
	// counter and never changes its expiry: a missing or expired counter
	// stays missing and yields 0. Callers that count an attempt before
	// knowing its outcome use it to refund the attempts that turn out not
	// to count.
	Decr(ctx context.Context, key string) (int64, error)

	// PutUser stores the record (user, kind, id) for ttl, replacing any
	// previous one, and makes it visible to ListUser and DeleteUser.
	PutUser(ctx context.Context, user, kind, id string, val []byte, ttl time.Duration) error

	// UpdateUser replaces an existing, unexpired record and sets its TTL to
	// ttl. It returns ErrNotFound when the record does not exist, so a
	// concurrent DeleteUser is never undone by an update.
	UpdateUser(ctx context.Context, user, kind, id string, val []byte, ttl time.Duration) error

	// GetUser returns the record's value, or ErrNotFound when it is missing
	// or expired.
	GetUser(ctx context.Context, user, kind, id string) ([]byte, error)

	// ListUser returns the user's unexpired records of the given kind, or of
	// every kind when kind is "", sorted by kind then id.
	ListUser(ctx context.Context, user, kind string) ([]Record, error)

	// DeleteUser removes the record (user, kind, id); with id "" every record
	// of that kind; with kind "" and id "" every record of the user. It
	// returns how many unexpired records it removed. Kind "" with a non-empty
	// id is an ErrInvalidArgument.
	DeleteUser(ctx context.Context, user, kind, id string) (int, error)

	// Ping checks that the backend is reachable.
	Ping(ctx context.Context) error

	// Close releases the store's resources and stops its background work.
	// Calling Close more than once is not an error.
	Close() error
}

// Record is one per-user record returned by [Store.ListUser].
type Record struct {
	Kind      string
	ID        string
	Value     []byte
	ExpiresAt time.Time
}

// Record kinds used by the [Manager].
const (
	// KindMFA is the kind of MFA session records.
	KindMFA = "mfa"
	// KindDevice is the kind of remembered-browser records.
	KindDevice = "device"
)

// Limits on store arguments, enforced by the Validate functions.
const (
	MaxKeyLen  = 512
	MaxUserLen = 512
	MaxKindLen = 32
	MaxIDLen   = 128
)

// ValidateKey checks a plain store key: 1 to [MaxKeyLen] bytes of valid
// UTF-8 without control characters. It returns an error wrapping
// [ErrInvalidArgument].
func ValidateKey(key string) error {
	if err := checkText(key, MaxKeyLen); err != nil {
		return fmt.Errorf("%w: key %w", ErrInvalidArgument, err)
	}
	return nil
}

// ValidateTTL checks that a TTL or window is positive. It returns an error
// wrapping [ErrInvalidArgument].
func ValidateTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%w: ttl must be positive, got %v", ErrInvalidArgument, ttl)
	}
	return nil
}

// ValidateUserRecord checks the name of one per-user record: user as in
// [ValidateKey] (up to [MaxUserLen]); kind of 1 to [MaxKindLen] bytes from
// [a-z0-9_]; id of 1 to [MaxIDLen] bytes from [A-Za-z0-9_.-]. It returns an
// error wrapping [ErrInvalidArgument].
func ValidateUserRecord(user, kind, id string) error {
	if err := checkText(user, MaxUserLen); err != nil {
		return fmt.Errorf("%w: user %w", ErrInvalidArgument, err)
	}
	if !validKind(kind) {
		return fmt.Errorf("%w: kind must be 1-%d characters of [a-z0-9_]", ErrInvalidArgument, MaxKindLen)
	}
	if !validID(id) {
		return fmt.Errorf("%w: id must be 1-%d characters of [A-Za-z0-9_.-]", ErrInvalidArgument, MaxIDLen)
	}
	return nil
}

// ValidateKeyTTL checks the arguments of Put, PutIfAbsent and Incr: key
// as in [ValidateKey], ttl as in [ValidateTTL].
func ValidateKeyTTL(key string, ttl time.Duration) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	return ValidateTTL(ttl)
}

// ValidateUserRecordTTL checks the arguments of PutUser and UpdateUser:
// the record as in [ValidateUserRecord], ttl as in [ValidateTTL].
func ValidateUserRecordTTL(user, kind, id string, ttl time.Duration) error {
	if err := ValidateUserRecord(user, kind, id); err != nil {
		return err
	}
	return ValidateTTL(ttl)
}

// ValidateUserSelector checks the arguments of ListUser (id always "") and
// DeleteUser: like [ValidateUserRecord], except that id may be "" (all of
// the kind) and kind may be "" when id is "" too (all of the user).
func ValidateUserSelector(user, kind, id string) error {
	if err := checkText(user, MaxUserLen); err != nil {
		return fmt.Errorf("%w: user %w", ErrInvalidArgument, err)
	}
	switch {
	case kind == "" && id != "":
		return fmt.Errorf("%w: an id needs a kind", ErrInvalidArgument)
	case kind != "" && !validKind(kind):
		return fmt.Errorf("%w: kind must be 1-%d characters of [a-z0-9_]", ErrInvalidArgument, MaxKindLen)
	case id != "" && !validID(id):
		return fmt.Errorf("%w: id must be 1-%d characters of [A-Za-z0-9_.-]", ErrInvalidArgument, MaxIDLen)
	}
	return nil
}

func checkText(s string, max int) error {
	switch {
	case s == "":
		return fmt.Errorf("is empty")
	case len(s) > max:
		return fmt.Errorf("is longer than %d bytes", max)
	case !utf8.ValidString(s):
		return fmt.Errorf("is not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("contains a control character")
		}
	}
	return nil
}

func validKind(s string) bool {
	if s == "" || len(s) > MaxKindLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func validID(s string) bool {
	if s == "" || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
