package memstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/session/memstore"
	"github.com/stepup-dev/stepup/session/storetest"
)

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		clk := storetest.NewClock(epoch)
		return storetest.Harness{Store: memstore.New(memstore.Options{Now: clk.Now}), Advance: clk.Advance, Now: clk.Now}
	})
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewClock(epoch)
	s := memstore.New(memstore.Options{Now: clk.Now})
	defer s.Close()
	for _, k := range []string{"a", "b"} {
		if err := s.Put(ctx, k, []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, "c", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.PutUser(ctx, "alice", "mfa", "s1", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := s.Sweep(); n != 0 {
		t.Errorf("Sweep before expiry removed %d, want 0", n)
	}
	clk.Advance(2 * time.Minute)
	if n := s.Sweep(); n != 3 {
		t.Errorf("Sweep after expiry removed %d, want 3", n)
	}
	if _, err := s.Get(ctx, "c"); err != nil {
		t.Errorf("Get(c) after sweep: %v", err)
	}
}
