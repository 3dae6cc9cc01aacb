package main

import (
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/mfa"
)

// maxMessagesFile bounds mfa.messages_file.
const maxMessagesFile = 1 << 20

// mfaLook reads the branding and messages files of the MFA pages.
func mfaLook(cfg *config.Config) (mfa.Branding, map[string]map[string]string, error) {
	b := mfa.Branding{Organisation: cfg.MFA.Branding.Organisation, Accent: cfg.MFA.Branding.AccentColor}
	if f := cfg.MFA.Branding.LogoFile; f != "" {
		logo, err := readBounded(f, mfa.MaxLogoBytes)
		if err != nil {
			return b, nil, fmt.Errorf("mfa.branding.logo_file: %w", err)
		}
		b.Logo = logo
	}
	var tr map[string]map[string]string
	if f := cfg.MFA.MessagesFile; f != "" {
		raw, err := readBounded(f, maxMessagesFile)
		if err != nil {
			return b, nil, fmt.Errorf("mfa.messages_file: %w", err)
		}
		if err := yaml.Unmarshal(raw, &tr); err != nil {
			return b, nil, fmt.Errorf("mfa.messages_file %s: must map language tags to message ids to texts: %w", f, err)
		}
	}
	return b, tr, nil
}

func readBounded(path string, limit int) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > int64(limit) {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", path, st.Size(), limit)
	}
	return os.ReadFile(path)
}
