package rules

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// Buffer support: the Buffer class itself is JavaScript (prelude.js), the
// encodings are Go.

type bufEncoding int

const (
	encUTF8 bufEncoding = iota
	encHex
	encBase64
	encBase64URL
	encASCII
	encLatin1
	encUTF16LE
	encUnknown
)

func parseEncoding(v goja.Value) bufEncoding {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return encUTF8
	}
	switch strings.ToLower(v.String()) {
	case "utf8", "utf-8":
		return encUTF8
	case "hex":
		return encHex
	case "base64":
		return encBase64
	case "base64url":
		return encBase64URL
	case "ascii":
		return encASCII
	case "latin1", "binary":
		return encLatin1
	case "ucs2", "ucs-2", "utf16le", "utf-16le":
		return encUTF16LE
	}
	return encUnknown
}

func (rt *jsRuntime) encodingArg(v goja.Value) bufEncoding {
	enc := parseEncoding(v)
	if enc == encUnknown {
		panic(rt.vm.NewTypeError("Unknown encoding: " + v.String()))
	}
	return enc
}

// decodeString converts a JS string into bytes in the given encoding, with
// Node's lenient rules (invalid base64/hex input is skipped or truncated).
func decodeString(s string, enc bufEncoding) []byte {
	switch enc {
	case encHex:
		n := len(s) / 2
		out := make([]byte, 0, n)
		for i := 0; i+1 < len(s); i += 2 {
			b, err := hex.DecodeString(s[i : i+2])
			if err != nil {
				break
			}
			out = append(out, b[0])
		}
		return out
	case encBase64, encBase64URL:
		clean := make([]byte, 0, len(s))
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '=':
				i = len(s)
			case c == '-':
				clean = append(clean, '+')
			case c == '_':
				clean = append(clean, '/')
			case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
				clean = append(clean, c)
			}
		}
		if len(clean)%4 == 1 {
			clean = clean[:len(clean)-1]
		}
		out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
		n, err := base64.RawStdEncoding.Decode(out, clean)
		if err != nil {
			// Non-zero trailing bits: decode what can be decoded.
			return out[:n]
		}
		return out[:n]
	case encASCII, encLatin1:
		units := utf16.Encode([]rune(s))
		out := make([]byte, len(units))
		for i, u := range units {
			out[i] = byte(u)
		}
		return out
	case encUTF16LE:
		units := utf16.Encode([]rune(s))
		out := make([]byte, 2*len(units))
		for i, u := range units {
			out[2*i] = byte(u)
			out[2*i+1] = byte(u >> 8)
		}
		return out
	default:
		return []byte(s)
	}
}

// encodeBytes converts bytes into a JS string in the given encoding.
func encodeBytes(b []byte, enc bufEncoding) string {
	switch enc {
	case encHex:
		return hex.EncodeToString(b)
	case encBase64:
		return base64.StdEncoding.EncodeToString(b)
	case encBase64URL:
		return base64.RawURLEncoding.EncodeToString(b)
	case encASCII:
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c & 0x7f)
		}
		return string(r)
	case encLatin1:
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return string(r)
	case encUTF16LE:
		units := make([]uint16, len(b)/2)
		for i := range units {
			units[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
		}
		return string(utf16.Decode(units))
	default:
		if utf8.Valid(b) {
			return string(b)
		}
		var sb strings.Builder
		for len(b) > 0 {
			r, n := utf8.DecodeRune(b)
			sb.WriteRune(r)
			b = b[n:]
		}
		return sb.String()
	}
}

// bufferNatives returns the object handed to the prelude.
func (rt *jsRuntime) bufferNatives() *goja.Object {
	vm := rt.vm
	n := vm.NewObject()
	must(n.Set("decode", func(call goja.FunctionCall) goja.Value {
		enc := rt.encodingArg(call.Argument(1))
		return vm.ToValue(vm.NewArrayBuffer(decodeString(call.Argument(0).String(), enc)))
	}))
	must(n.Set("encode", func(call goja.FunctionCall) goja.Value {
		b := rt.bytesOf(call.Argument(0))
		enc := rt.encodingArg(call.Argument(1))
		start, end := 0, len(b)
		if v := call.Argument(2); !goja.IsUndefined(v) {
			start = clampIndex(v.ToInteger(), len(b))
		}
		if v := call.Argument(3); !goja.IsUndefined(v) {
			end = clampIndex(v.ToInteger(), len(b))
		}
		if end < start {
			end = start
		}
		return vm.ToValue(encodeBytes(b[start:end], enc))
	}))
	must(n.Set("byteLength", func(call goja.FunctionCall) goja.Value {
		enc := rt.encodingArg(call.Argument(1))
		s := call.Argument(0).String()
		if enc == encUTF8 {
			return vm.ToValue(len(s))
		}
		return vm.ToValue(len(decodeString(s, enc)))
	}))
	must(n.Set("isEncoding", func(call goja.FunctionCall) goja.Value {
		v := call.Argument(0)
		if _, ok := v.Export().(string); !ok {
			return vm.ToValue(false)
		}
		return vm.ToValue(parseEncoding(v) != encUnknown)
	}))
	return n
}

func clampIndex(i int64, n int) int {
	if i < 0 {
		return 0
	}
	if i > int64(n) {
		return n
	}
	return int(i)
}

// bytesOf returns the bytes of a Buffer / Uint8Array / ArrayBuffer, or
// throws a TypeError.
func (rt *jsRuntime) bytesOf(v goja.Value) []byte {
	if obj, ok := v.(*goja.Object); ok {
		switch obj.ExportType() {
		case typeBytes:
			b, _ := obj.Export().([]byte)
			return b
		case typeArrayBuffer:
			ab, _ := obj.Export().(goja.ArrayBuffer)
			return ab.Bytes()
		}
	}
	panic(rt.vm.NewTypeError("argument must be a Buffer or Uint8Array"))
}

// isBufferLike reports whether v is a Buffer, Uint8Array or ArrayBuffer.
func isBufferLike(v goja.Value) bool {
	obj, ok := v.(*goja.Object)
	if !ok {
		return false
	}
	t := obj.ExportType()
	return t == typeBytes || t == typeArrayBuffer
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// bufferModule is require('buffer'): {Buffer}, the Buffer global. The
// class itself is written in JavaScript (prelude.js) over the natives
// below.
var bufferModule = nativeModule{name: "buffer", nodeCore: true, load: (*jsRuntime).loadBuffer}

func (rt *jsRuntime) loadBuffer() *goja.Object {
	o := rt.vm.NewObject()
	must(o.Set("Buffer", rt.bufferCtor))
	return o
}
