package boltstore

// SetSweepBatch lets tests exercise batching with few entries.
func SetSweepBatch(s *Store, n int) { s.sweepBatch = n }
