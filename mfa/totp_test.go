package mfa

import (
	"bytes"
	"image/png"
	"testing"

	"rsc.io/qr"
)

// TestQRPNG checks the rendered image module by module against the code.
func TestQRPNG(t *testing.T) {
	const text = "otpauth://totp/stepup:alice@example.com?algorithm=SHA1&digits=6&issuer=stepup&period=30&secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	b, err := qrPNG(text)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c, err := qr.Encode(text, qr.M)
	if err != nil {
		t.Fatal(err)
	}
	side := (c.Size + 8) * qrScale
	if got := img.Bounds(); got.Dx() != side || got.Dy() != side {
		t.Fatalf("image %v, want %dx%d", got, side, side)
	}
	black := func(px, py int) bool {
		r, _, _, _ := img.At(px, py).RGBA()
		return r < 0x8000
	}
	for my := -4; my < c.Size+4; my++ {
		for mx := -4; mx < c.Size+4; mx++ {
			px, py := (mx+4)*qrScale+qrScale/2, (my+4)*qrScale+qrScale/2
			if got, want := black(px, py), c.Black(mx, my); got != want {
				t.Fatalf("module (%d,%d): black %v, want %v", mx, my, got, want)
			}
		}
	}
}
