package mfa

import (
	"fmt"
	"maps"
	"time"
)

// defaultMessages is every piece of text the MFA step shows, in English,
// keyed by message id. Templates use them through the "t" and "tn"
// functions; handlers through catalog.get. Values with verbs are format
// strings for [fmt.Sprintf]. Ids ending in "_one" and "_other" are the
// singular and plural of the id before the suffix.
//
// To translate, pass [Options.Messages] with the ids to replace: see
// [DefaultMessages].
var defaultMessages = map[string]string{
	"lang":    "en",
	"product": "Sign-in check",

	// Enrolment.
	"enrol_title":        "Set up your authenticator app",
	"enrol_intro":        "Your organisation asks for a second step when you sign in from here. Add this account to an authenticator app on your phone (Google Authenticator, Microsoft Authenticator, 1Password, …), then enter the 6-digit code it shows.",
	"enrol_step_scan":    "Scan this QR code with the app.",
	"enrol_qr_alt":       "QR code that adds your account to an authenticator app",
	"enrol_open_app":     "On this phone? Open the authenticator app",
	"enrol_secret_label": "Can't scan it? Enter this key in the app instead:",
	"enrol_secret_kind":  "Account: %s. Type: time-based, 6 digits, every 30 seconds.",
	"enrol_step_code":    "Enter the code the app shows to finish.",
	"enrol_submit":       "Confirm and continue",

	// Verification.
	"verify_title":  "Enter your verification code",
	"verify_intro":  "Open your authenticator app and enter the 6-digit code for %s.",
	"verify_submit": "Verify",
	"use_recovery":  "Lost your phone? Use a recovery code",
	"use_totp":      "Use the code from your authenticator app instead",

	"code_label":     "6-digit code",
	"remember_label": "Remember this browser for %d days",
	"remember_hint":  "Don't tick this on a shared or public computer.",

	// Recovery codes.
	"recovery_title":      "Use a recovery code",
	"recovery_intro":      "Enter one of the recovery codes you saved (when you set up your authenticator app, or your latest new set). Each code works once.",
	"recovery_label":      "Recovery code",
	"recovery_submit":     "Verify",
	"recovery_left_one":   "You have 1 recovery code left.",
	"recovery_left_other": "You have %d recovery codes left.",
	"recovery_none":       "You have no recovery codes left. Ask your administrator to reset your sign-in methods.",
	"codes_title":         "Save your recovery codes",
	"codes_intro":         "Your sign-in method is set up. If you lose it, each of these codes lets you sign in once. Save them somewhere safe, such as a password manager, or print them.",
	"codes_once":          "They will not be shown again.",
	"codes_list_label":    "Your recovery codes",
	"codes_continue":      "I have saved them, continue",
	"codes_new_intro":     "These are your new recovery codes. Your previous recovery codes no longer work. Each of these codes lets you sign in once if you lose your phone. Save them somewhere safe, such as a password manager, or print them.",

	// Errors the user can act on.
	"err_code_empty":         "Enter the code from your authenticator app.",
	"err_code_wrong":         "That code is not right. Check that the time on your phone is correct.",
	"attempts_left_one":      "You can try once more before a pause.",
	"attempts_left_other":    "You can try %d more times before a pause.",
	"err_code_reused":        "That code was already used. Wait for the next code in your app and enter it.",
	"err_recovery_empty":     "Enter one of your recovery codes.",
	"err_recovery_wrong":     "That recovery code is not valid or was already used.",
	"err_locked":             "Too many wrong codes. Try again in %s.",
	"err_enrol_code_wrong":   "That code does not match. Make sure you added the account shown above, then enter its current code.",
	"err_already_enrolled":   "An authenticator app was already set up for your account. Enter its code.",
	"duration_minutes_one":   "1 minute",
	"duration_minutes_other": "%d minutes",
	"duration_hours_one":     "1 hour",
	"duration_hours_other":   "%d hours",

	// Pages that end the flow.
	"expired_title":          "This sign-in link has expired",
	"expired_body":           "This sign-in link has expired or was already used. Start again from the application.",
	"invalid_title":          "This sign-in link is not valid",
	"invalid_body":           "This sign-in link is incomplete or damaged. Start again from the application.",
	"start_again":            "Start again",
	"wrong_user_title":       "This link belongs to another account",
	"wrong_user_body":        "This sign-in link was started by a different account than the one you are signed in with. It cannot be used here. Go back to the application and sign in again.",
	"signin_title":           "Please sign in again",
	"signin_body":            "We could not confirm who you are: your sign-in may have expired. Go back to the application and sign in again.",
	"go_to_app":              "Go to the application",
	"enrol_network_title":    "Set up your authenticator from the office",
	"enrol_network_body":     "You need to enrol your authenticator from the office network first. Connect to the office network, then open the application again.",
	"unavailable_title":      "This sign-in method is not available yet",
	"unavailable_body":       "The application asks for a sign-in method that this server does not offer yet. Contact your administrator.",
	"store_down_title":       "Temporarily unavailable",
	"store_down_body":        "We cannot check your sign-in right now. Wait a minute, then try again.",
	"csrf_title":             "This form could not be accepted",
	"csrf_body":              "For your security, this form was refused: it may be too old, or it was sent from another site. Go back, reload the page and try again.",
	"bad_request_title":      "Something is wrong with this request",
	"bad_request_body":       "The form could not be read. Go back, reload the page and try again.",
	"not_found_title":        "Page not found",
	"not_found_body":         "There is nothing at this address.",
	"method_title":           "This action is not allowed",
	"method_body":            "This page cannot be used this way.",
	"internal_title":         "Something went wrong",
	"internal_body":          "Please try again later. If it keeps happening, contact your administrator.",
	"factor_broken_title":    "Your authenticator cannot be checked",
	"factor_broken_body":     "Your authenticator app is set up, but it cannot be checked right now. Contact your administrator.",
	"factors_title":          "Your sign-in methods",
	"factors_totp_on":        "Authenticator app: set up on %s.",
	"factors_totp_off":       "Authenticator app: not set up yet.",
	"factors_devices_one":    "Remembered browsers: 1.",
	"factors_devices_other":  "Remembered browsers: %d.",
	"factors_reset_heading":  "Lost or replaced your phone?",
	"factors_reset_intro":    "Resetting removes your authenticator app and your recovery codes, and forgets every remembered browser. You will set up a new authenticator app the next time you open the application.",
	"factors_reset_network":  "You can set up a new authenticator app only from the office network.",
	"factors_reset_submit":   "Reset my authenticator",
	"factors_reset_done":     "Your authenticator was removed",
	"factors_reset_done_msg": "Your authenticator app, your recovery codes and your remembered browsers were removed. The next time you open the application you will be asked to set up a new authenticator app.",
	"factors_codes_heading":  "Used up or lost your recovery codes?",
	"factors_codes_intro":    "Get a new set of recovery codes. Your previous recovery codes stop working. You need your authenticator app or a passkey for this.",
	"factors_codes_submit":   "Get new recovery codes",
	"factors_recovery_none":  "You have no recovery codes left. You can get new ones below.",
	"factors_codes_no_totp":  "New recovery codes need an authenticator app, and yours is not set up. Open the application to set one up.",
	"date_format":            "2 January 2006",

	// Passkeys and security keys.
	"enrol_choice_title":          "Set up a second step",
	"enrol_choice_intro":          "Your organisation asks for a second step when you sign in from here. Choose how: an authenticator app on your phone, or a passkey or security key. You can add the other one later from your sign-in methods page.",
	"enrol_totp_heading":          "Authenticator app",
	"passkey_enrol_heading":       "Passkey or security key",
	"passkey_enrol_title":         "Set up a passkey or security key",
	"passkey_enrol_intro":         "Use your device's screen lock (fingerprint, face or PIN) or a security key to confirm it's you. Give it a name so that you can recognise it later.",
	"passkey_name_label":          "Name (optional)",
	"passkey_name_hint":           "For example \"Work laptop\" or \"Blue security key\".",
	"passkey_register_submit":     "Set up a passkey or security key",
	"passkey_default_name":        "Passkey %d",
	"verify_any_title":            "Confirm it's you",
	"passkey_verify_title":        "Confirm it's you with your passkey",
	"passkey_verify_intro":        "Use your passkey or security key: your device will ask for your fingerprint, face, PIN or a touch of the key.",
	"passkey_verify_submit":       "Use a passkey or security key",
	"passkey_or_heading":          "Or use a passkey or security key",
	"passkey_noscript":            "Passkeys need JavaScript, which is turned off in this browser.",
	"passkey_js_failed":           "Your passkey or security key was not used. Try again, or choose another way.",
	"passkey_js_unsupported":      "This browser cannot use passkeys or security keys. Choose another way.",
	"use_passkey":                 "Use your passkey or security key instead",
	"err_passkey_name":            "That name is too long or contains characters that cannot be shown. Use at most 64 characters.",
	"err_passkey_register":        "Your passkey or security key could not be set up. Try again.",
	"err_passkey_kind":            "The application asks for another kind of passkey or security key than the one you used. Use a different one.",
	"err_passkey_failed":          "Your passkey or security key could not be verified.",
	"err_passkey_too_many":        "You have the largest number of passkeys allowed. Remove one first.",
	"passkey_kind_platform":       "Passkey on a device",
	"passkey_kind_roaming":        "Security key or phone",
	"factor_needed_title":         "This application needs another sign-in method",
	"factor_needed_body":          "The application asks for a sign-in method that you have not set up yet. Add it on your sign-in methods page, then open the application again.",
	"manage_factors":              "Go to your sign-in methods",
	"back_to_app":                 "Back to the application",
	"back_to_factors":             "Back to your sign-in methods",
	"never":                       "never",
	"remove":                      "Remove",
	"forget":                      "Forget",
	"cancel":                      "Cancel",
	"confirm_remove":              "Yes, remove it",
	"confirm_forget":              "Yes, forget it",
	"confirm_reset_title":         "Reset all your sign-in methods?",
	"confirm_totp_title":          "Remove your authenticator app?",
	"confirm_totp_body":           "Codes from your authenticator app will no longer work. If it is your only sign-in method, your recovery codes and remembered browsers go too, and you will set up a new method the next time you open the application.",
	"confirm_passkey_title":       "Remove the passkey \"%s\"?",
	"confirm_passkey_body":        "This passkey or security key will no longer work for your account. If it is your only sign-in method, your recovery codes and remembered browsers go too, and you will set up a new method the next time you open the application.",
	"confirm_device_title":        "Forget this browser?",
	"confirm_device_body":         "That browser will be asked for the second step again the next time it opens the application.",
	"factors_gone_title":          "Already removed",
	"factors_gone_body":           "This item does not exist any more. It may have been removed in another window.",
	"factors_methods_heading":     "Sign-in methods",
	"factors_totp_name":           "Authenticator app",
	"factors_passkeys_none":       "Passkeys and security keys: none yet.",
	"factors_created":             "Added %s",
	"factors_remembered":          "Remembered %s",
	"factors_last_used":           "last used %s",
	"factors_passkey_add_heading": "Add a passkey or security key",
	"factors_passkey_add_intro":   "Add a passkey on this device, or a security key, as another way to confirm it's you.",
	"factors_passkey_add_submit":  "Add a passkey or security key",
	"factors_passkey_added":       "Your passkey or security key was added.",
	"factors_devices_heading":     "Remembered browsers",
	"factors_devices_none":        "No browser is remembered.",
	"device_unknown":              "Unknown browser",
	"codes_download":              "Download",
	"codes_copy":                  "Copy",
	"codes_print":                 "Print",
	"codes_copied":                "Copied.",
	"codes_file_name":             "recovery-codes.txt",

	// Duo.
	"duo_title":              "Continue with Duo",
	"duo_intro":              "Your organisation uses Duo for the second step when you sign in from here. You will go to Duo to approve the sign-in, then come back here.",
	"duo_submit":             "Continue to Duo",
	"use_duo":                "Continue with Duo",
	"use_authenticator":      "Use your authenticator app",
	"try_again":              "Try again",
	"duo_down_title":         "Duo is not available",
	"duo_down_body":          "We cannot reach Duo to check your sign-in right now, so you cannot continue. Wait a few minutes, then try again.",
	"duo_down_fallback_body": "We cannot reach Duo to check your sign-in right now. You can use your authenticator app instead.",
	"duo_only_title":         "Duo is required",
	"duo_only_body":          "This application asks you to sign in with Duo.",
	"duo_denied_title":       "Duo did not approve this sign-in",
	"duo_denied_body":        "The sign-in was denied in Duo. If you did not try to sign in just now, tell your administrator.",
	"duo_failed_title":       "Duo's answer could not be accepted",
	"duo_failed_body":        "The answer from Duo could not be verified. Start again from the application.",
	"duo_config_title":       "Duo is not set up correctly",
	"duo_config_body":        "The application asks for Duo, but the Duo settings it was given cannot be used. Contact your administrator.",

	// A custom MFA service (a rule's redirect).
	"redirect_off_title":    "This sign-in method is not set up",
	"redirect_off_body":     "You were sent back from a sign-in service that this server does not expect. Contact your administrator.",
	"redirect_failed_title": "Your sign-in could not be confirmed",
	"redirect_failed_body":  "The answer from the sign-in service could not be verified. Start again from the application.",
	"denied_title":          "Access denied",
	"denied_body":           "Access to this application was denied.",
}

// DefaultMessages returns a copy of the English text of the MFA step,
// keyed by message id: the starting point of a translation passed as
// [Options.Messages].
func DefaultMessages() map[string]string { return maps.Clone(defaultMessages) }

// catalog is the text of one handler: the defaults with the overrides of
// Options.Messages.
type catalog map[string]string

// newCatalog merges overrides into the defaults; an override of an
// unknown id is an error, so that a translation cannot silently miss.
func newCatalog(overrides map[string]string) (catalog, error) {
	c := catalog(maps.Clone(defaultMessages))
	var unknown []string
	for id, v := range overrides {
		if _, ok := c[id]; !ok {
			unknown = append(unknown, id)
			continue
		}
		c[id] = v
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("messages: unknown message ids %q", unknown)
	}
	return c, nil
}

// get returns the message id formatted with args. An unknown id returns
// the id itself in brackets so that a mistake shows on the page rather
// than failing the request; tests check that templates only use known
// ids.
func (c catalog) get(id string, args ...any) string {
	s, ok := c[id]
	if !ok {
		return "[" + id + "]"
	}
	if len(args) == 0 {
		return s
	}
	return fmt.Sprintf(s, args...)
}

// plural returns id_one for n == 1 and id_other (formatted with n)
// otherwise.
func (c catalog) plural(id string, n int) string {
	if n == 1 {
		return c.get(id + "_one")
	}
	return c.get(id+"_other", n)
}

// duration says d in whole minutes, or whole hours from 2 hours, rounded
// up: "1 minute", "5 minutes", "2 hours".
func (c catalog) duration(d time.Duration) string {
	mins := int((d + time.Minute - 1) / time.Minute)
	if mins < 1 {
		mins = 1
	}
	if mins >= 120 {
		return c.plural("duration_hours", (mins+59)/60)
	}
	return c.plural("duration_minutes", mins)
}

// date formats t as a calendar day.
func (c catalog) date(t time.Time) string {
	return t.UTC().Format(c.get("date_format"))
}
