package session

import "strings"

// SummarizeUserAgent reduces a User-Agent header to a short label such as
// "Chrome on Linux", "Safari on iOS" or "Firefox on Windows", for listing
// remembered browsers. It recognises the common browsers and systems by
// substring and says "Unknown browser" or "unknown system" otherwise; it
// never returns the raw header.
func SummarizeUserAgent(ua string) string {
	return uaBrowser(ua) + " on " + uaSystem(ua)
}

func uaBrowser(ua string) string {
	switch {
	case ua == "":
		return "Unknown browser"
	case strings.Contains(ua, "Edg/") || strings.Contains(ua, "EdgA/") || strings.Contains(ua, "EdgiOS/"):
		return "Edge"
	case strings.Contains(ua, "OPR/") || strings.Contains(ua, "Opera"):
		return "Opera"
	case strings.Contains(ua, "SamsungBrowser/"):
		return "Samsung Internet"
	case strings.Contains(ua, "Firefox/") || strings.Contains(ua, "FxiOS/"):
		return "Firefox"
	case strings.Contains(ua, "Chromium/"):
		return "Chromium"
	case strings.Contains(ua, "Chrome/") || strings.Contains(ua, "CriOS/"):
		return "Chrome"
	case strings.Contains(ua, "Safari/") && strings.Contains(ua, "Version/"):
		return "Safari"
	case strings.HasPrefix(ua, "curl/"):
		return "curl"
	default:
		return "Unknown browser"
	}
}

func uaSystem(ua string) string {
	switch {
	case strings.Contains(ua, "Windows"):
		return "Windows"
	case strings.Contains(ua, "Android"):
		return "Android"
	case strings.Contains(ua, "iPhone") || strings.Contains(ua, "iPad") || strings.Contains(ua, "iPod"):
		return "iOS"
	case strings.Contains(ua, "CrOS"):
		return "ChromeOS"
	case strings.Contains(ua, "Macintosh") || strings.Contains(ua, "Mac OS X"):
		return "macOS"
	case strings.Contains(ua, "Linux") || strings.Contains(ua, "X11"):
		return "Linux"
	default:
		return "unknown system"
	}
}
