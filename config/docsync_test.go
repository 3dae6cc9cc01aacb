package config

import (
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// docKeys lists every key path of t as docs/configuration.md writes it:
// a map's entries as <name> (<host>, <client>, <realm>, <key> by what
// the map holds), a list's items as [], each with its type word.
func docKeys(t reflect.Type, path string, out map[string]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if path != "" {
		out[path] = typeWord(t)
	}
	switch {
	case t == secretType || t == durationType || t == byteSizeType || t == byteSizeOrAutoType:
		return
	case t.Kind() == reflect.Struct:
		keys, fields := yamlFields(t)
		for _, k := range keys {
			docKeys(fields[k].Type, join(path, k), out)
		}
	case t.Kind() == reflect.Map:
		docKeys(t.Elem(), path+"."+mapEntryWord(path), out)
	case t.Kind() == reflect.Slice:
		if e := t.Elem(); isSection(e) {
			docKeys(e, path+"[]", out)
		}
	}
}

// mapEntryWord names the entries of the map at path.
func mapEntryWord(path string) string {
	switch path {
	case "clients.hosts":
		return "<host>"
	case "clients.names", "clients.mfa_max_age":
		return "<client>"
	case "sessions.realms":
		return "<realm>"
	case "rules.configuration":
		return "<key>"
	}
	return "<name>"
}

// typeWord is the type column of the reference.
func typeWord(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case durationType:
		return "duration"
	case byteSizeType:
		return "size"
	case byteSizeOrAutoType:
		return "size, auto or off"
	case secretType:
		return "secret"
	case networkType:
		return "network"
	}
	switch t.Kind() {
	case reflect.Struct:
		return "section"
	case reflect.Map:
		return "map of " + typeWord(t.Elem())
	case reflect.Slice:
		e := typeWord(t.Elem())
		if isSection(t.Elem()) {
			e = "sections"
		} else if e != "secret" && e != "duration" {
			e += "s"
		}
		return "list of " + e
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int64:
		return "integer"
	case reflect.Float64:
		return "number"
	}
	return t.Kind().String()
}

var docRow = regexp.MustCompile("(?m)^\\| `([^`]+)` \\| ([^|]+) \\|")

// TestConfigurationReferenceInSync: docs/configuration.md names every key
// of the configuration, with its type, and no key that does not exist.
func TestConfigurationReferenceInSync(t *testing.T) {
	want := map[string]string{}
	docKeys(configType, "", want)
	raw, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range docRow.FindAllStringSubmatch(string(raw), -1) {
		if _, dup := got[m[1]]; dup {
			t.Errorf("docs/configuration.md: %s is listed twice", m[1])
		}
		got[m[1]] = strings.TrimSpace(m[2])
	}
	var missing, extra []string
	for k, typ := range want {
		g, ok := got[k]
		switch {
		case !ok:
			missing = append(missing, "| `"+k+"` | "+typ+" |")
		case g != typ:
			t.Errorf("docs/configuration.md: %s has type %q, the configuration %q", k, g, typ)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("docs/configuration.md lacks %d keys:\n%s", len(missing), strings.Join(missing, "\n"))
	}
	if len(extra) > 0 {
		t.Errorf("docs/configuration.md lists keys the configuration does not have:\n%s", strings.Join(extra, "\n"))
	}
}
