package session

import (
	"errors"
	"fmt"
)

// SealedOptionSuffix ends the name of a [Requirement] option that holds a
// sealed value: [Sealer.SealOption] stores the secret "skey" as
// "skey_sealed".
const SealedOptionSuffix = "_sealed"

// SealOption encrypts value with s and stores it in
// req.Options[name+SealedOptionSuffix], bound to user (the state's user)
// and to name: a sealed option copied into another user's state, or under
// another name, does not open. The plain value is never stored. It is how
// a secret a rule handed over (a Duo client secret) travels in a
// transaction state, which the store keeps otherwise in plain.
func (s *Sealer) SealOption(req *Requirement, user, name, value string) error {
	if user == "" || name == "" {
		return errors.New("seal option: empty user or name")
	}
	sealed, err := s.Seal([]byte(value), optionAD(user, name))
	if err != nil {
		return fmt.Errorf("seal option %q: %w", name, err)
	}
	if req.Options == nil {
		req.Options = make(map[string]string, 1)
	}
	req.Options[name+SealedOptionSuffix] = sealed
	return nil
}

// OpenOption returns the value [Sealer.SealOption] sealed into req for
// user under name. It fails with [ErrNotFound] when the option is absent,
// and with the errors of [Sealer.Open] when it does not open (another
// user's, tampered with, sealed with a key no longer listed).
func (s *Sealer) OpenOption(req Requirement, user, name string) (string, error) {
	sealed, ok := req.Options[name+SealedOptionSuffix]
	if !ok || sealed == "" {
		return "", fmt.Errorf("sealed option %q: %w", name, ErrNotFound)
	}
	pt, err := s.Open(sealed, optionAD(user, name))
	if err != nil {
		return "", fmt.Errorf("sealed option %q: %w", name, err)
	}
	return string(pt), nil
}

// optionAD is the associated data of a sealed option: the purpose, the
// option's name and the user, NUL-separated so that no choice of name and
// user collides with another.
func optionAD(user, name string) string { return "option\x00" + name + "\x00" + user }
