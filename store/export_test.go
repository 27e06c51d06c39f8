package store

// QueuedWrites is the number of writes waiting for the next group commit,
// for tests that must know a write has queued before they let the commit
// in flight finish.
func QueuedWrites(s *BoltStore) int {
	if s.group == nil {
		return 0
	}
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	return len(s.group.queue)
}
