package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// KindMetadata is the kind of the records holding a user's metadata as
// the rules and Actions updated it (ids "app" and "user").
const KindMetadata = "metadata"

// MetadataTTL is how long a user's stored metadata lives after its last
// update.
const MetadataTTL = 400 * 24 * time.Hour

// MaxMetadataBytes bounds one stored metadata object (Auth0 bounds each
// of app_metadata and user_metadata to 32 KB per update; the stored
// object may collect several updates).
const MaxMetadataBytes = 64 << 10

// UserMetadata is a user's stored app_metadata and user_metadata (nil
// when none).
type UserMetadata struct {
	App, User map[string]any
}

// LoadUserMetadata returns what the rules stored for user. A record that
// does not decode is ignored (nil). Only a store that cannot answer is
// an error.
func LoadUserMetadata(ctx context.Context, s Store, user string) (UserMetadata, error) {
	recs, err := s.ListUser(ctx, user, KindMetadata)
	if err != nil {
		return UserMetadata{}, err
	}
	var md UserMetadata
	for _, r := range recs {
		var m map[string]any
		if json.Unmarshal(r.Value, &m) != nil {
			continue
		}
		switch r.ID {
		case "app":
			md.App = m
		case "user":
			md.User = m
		}
	}
	return md, nil
}

// UpdateUserMetadata merges the updates into user's stored metadata: top
// level keys replace the stored ones, a nil value deletes the key.
// Concurrent updates of one user may lose one another's keys (the last
// write of a record wins), as concurrent logins could in Auth0.
func UpdateUserMetadata(ctx context.Context, s Store, user string, app, usr map[string]any) error {
	var errs []error
	for _, u := range []struct {
		id  string
		set map[string]any
	}{{"app", app}, {"user", usr}} {
		if len(u.set) == 0 {
			continue
		}
		cur := map[string]any{}
		b, err := s.GetUser(ctx, user, KindMetadata, u.id)
		switch {
		case err == nil:
			_ = json.Unmarshal(b, &cur)
			if cur == nil {
				cur = map[string]any{}
			}
		case !errors.Is(err, ErrNotFound):
			errs = append(errs, err)
			continue
		}
		for k, v := range u.set {
			if v == nil {
				delete(cur, k)
			} else {
				cur[k] = v
			}
		}
		b, err = json.Marshal(cur)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s_metadata: %w", u.id, err))
			continue
		}
		if len(b) > MaxMetadataBytes {
			errs = append(errs, fmt.Errorf("%w: %s_metadata larger than %d bytes", ErrInvalidArgument, u.id, MaxMetadataBytes))
			continue
		}
		errs = append(errs, s.PutUser(ctx, user, KindMetadata, u.id, b, MetadataTTL))
	}
	return errors.Join(errs...)
}
