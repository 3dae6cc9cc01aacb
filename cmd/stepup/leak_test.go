package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: a
// server, a stream or a timer the code under test started and never ended.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
