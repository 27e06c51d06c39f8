package postgres_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/store/postgres"
)

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// postgres16 gives the pool room for 8 writers and a reader or two.
func postgres16() []postgres.Option { return []postgres.Option{postgres.WithMaxConns(16)} }

// The benchmarks here put bbolt and PostgreSQL side by side in one run,
// through the same store.Backend calls the SCIM layer makes. bbolt is
// opened with the timer batch serve used when BENCHMARKS.md's side-by-side
// figures were taken (WithBatch(500µs); serve now uses WithGroupCommit);
// PostgreSQL is the
// throw-away cluster of pgtest, durable (fsync on) when benchmarks run,
// on the same machine over loopback TCP.
//
//	go test -run '^$' -bench 'Store|Import' -benchtime=1x ./store/postgres/   # import: 100k users, 1M memberships
//	go test -run '^$' -bench 'Store' -benchtime=5s ./store/postgres/

type backendCase struct {
	name string
	open func(b *testing.B) store.Backend
}

var backends = []backendCase{
	{"bolt", func(b *testing.B) store.Backend {
		s, err := store.Open(filepath.Join(b.TempDir(), "bench.db"), store.WithBatch(500*time.Microsecond))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return s
	}},
	{"postgres", func(b *testing.B) store.Backend { return openPG(b, postgres16()...) }},
}

// latencies keeps every operation's duration for percentiles.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d...)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	slices.Sort(l.d)
	if len(l.d) == 0 {
		return
	}
	p := func(q float64) float64 { return float64(l.d[int(q*float64(len(l.d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(l.d))/elapsed.Seconds(), "ops/s")
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
}

// parallelOps runs op from 8 goroutines (SCIM workers) b.N times in all.
func parallelOps(b *testing.B, op func(i int) error) {
	var l latencies
	var next atomic.Int64
	b.SetParallelism(8 / max(1, runtimeProcs()))
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			i := int(next.Add(1))
			t := time.Now()
			if err := op(i); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t))
		}
		l.add(mine)
	})
	l.report(b, time.Since(start))
}

// BenchmarkStoreCreateUser: SCIM POST /Users as the store sees it, 8
// concurrent writers.
func BenchmarkStoreCreateUser(b *testing.B) {
	for _, bc := range backends {
		b.Run(bc.name, func(b *testing.B) {
			s := bc.open(b)
			run := rand.Int64()
			parallelOps(b, func(i int) error {
				_, err := s.CreateUser(time.Now(), benchUser(fmt.Sprintf("r%d-%d", run, i)))
				return err
			})
		})
	}
}

// BenchmarkStoreLookup: the userName lookup of a SCIM filter (Okta and
// Entra ID check existence before every create), 8 concurrent readers,
// 10k users stored.
func BenchmarkStoreLookup(b *testing.B) {
	const users = 10000
	for _, bc := range backends {
		b.Run(bc.name, func(b *testing.B) {
			s := bc.open(b)
			loadUsers(b, s, users)
			parallelOps(b, func(i int) error {
				_, err := s.UserByUserName(fmt.Sprintf("user%d@example.com", (i*7919)%users))
				return err
			})
		})
	}
}

// BenchmarkImport is an IdP's initial import through the store: users
// created by 8 concurrent writers, then every user added to 10 of 100
// groups in 1000-member PATCHes (one UpdateGroup each), 8 at a time on
// different groups. SCIMFLARE_BENCH_USERS scales it (default 100000
// users, so 1M memberships). Run with -benchtime=1x.
func BenchmarkImport(b *testing.B) {
	users := 100000
	if v, err := strconv.Atoi(os.Getenv("SCIMFLARE_BENCH_USERS")); err == nil && v > 0 {
		users = v
	}
	const groups, perUser, chunk, workers = 100, 10, 1000, 8
	for _, bc := range backends {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				s := bc.open(b)
				ids := make([]string, users)
				start := time.Now()
				var wg sync.WaitGroup
				for w := range workers {
					wg.Go(func() {
						for i := w; i < users; i += workers {
							u, err := s.CreateUser(time.Now(), benchUser(fmt.Sprintf("user%d@example.com", i)))
							if err != nil {
								b.Error(err)
								return
							}
							ids[i] = u.ID
						}
					})
				}
				wg.Wait()
				usersTook := time.Since(start)
				gids := make([]string, groups)
				for g := range gids {
					grp, err := s.CreateGroup(time.Now(), store.Group{DisplayName: fmt.Sprintf("group%d", g)}, nil)
					if err != nil {
						b.Fatal(err)
					}
					gids[g] = grp.ID
				}
				// Group g gets users i with i%groups in [g, g+perUser) (mod
				// groups): every user lands in perUser groups.
				type job struct {
					group   string
					members []string
				}
				jobs := make(chan job)
				start = time.Now()
				for range workers {
					wg.Go(func() {
						for j := range jobs {
							_, err := s.UpdateGroup(j.group, time.Now(), 0, func(tx store.GroupTx) error {
								for _, id := range j.members {
									if _, err := tx.AddMember(store.MemberRef{ID: id, Type: store.MemberUser}); err != nil {
										return err
									}
								}
								return nil
							})
							if err != nil {
								b.Error(err)
							}
						}
					})
				}
				memberships := 0
				for g := range groups {
					var batch []string
					for i := range users {
						if d := (i%groups - g + groups) % groups; d < perUser {
							batch = append(batch, ids[i])
							if len(batch) == chunk {
								jobs <- job{gids[g], batch}
								memberships += len(batch)
								batch = nil
							}
						}
					}
					if len(batch) > 0 {
						jobs <- job{gids[g], batch}
						memberships += len(batch)
					}
				}
				close(jobs)
				wg.Wait()
				membersTook := time.Since(start)
				b.ReportMetric(float64(users)/usersTook.Seconds(), "users/s")
				b.ReportMetric(float64(memberships)/membersTook.Seconds(), "memberships/s")
				b.ReportMetric(usersTook.Seconds()+membersTook.Seconds(), "total-s")
				if n, err := s.CountGroupMembers(gids[0]); err != nil || n != users*perUser/groups {
					b.Fatalf("group0 has %d members (%v), want %d", n, err, users*perUser/groups)
				}
			}
		})
	}
}

func benchUser(name string) store.User {
	return store.User{UserName: name, Email: name, ExternalID: "ext-" + name, Active: true,
		Doc: []byte(`{"name":{"givenName":"Given","familyName":"Family"},"displayName":"Given Family"}`)}
}

// loadUsers stores n users "user<i>@example.com" through Load (fast set-up).
func loadUsers(b *testing.B, s store.Backend, n int) {
	b.Helper()
	at := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	err := s.Load(func(put func(store.DumpItem) error) error {
		for i := range n {
			u := benchUser(fmt.Sprintf("user%d@example.com", i))
			u.ID = store.NewID(at.Add(time.Duration(i) * time.Millisecond))
			u.Meta = store.Meta{Created: at, LastModified: at, Version: 1}
			u.ActiveSince = at
			if err := put(store.DumpItem{User: &u}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReplaceMemberCache100k: a full listing of a 100k-member account
// that differs from the cached one in one member (the reconciler's full
// run), per backend.
func BenchmarkReplaceMemberCache100k(b *testing.B) {
	const n = 100000
	members := make([]store.CachedMember, n)
	for i := range members {
		members[i] = store.CachedMember{MemberID: fmt.Sprintf("m%d", i), Email: fmt.Sprintf("user%d@example.com", i), Status: "accepted", Keys: []string{"role:read"}}
	}
	for _, bc := range backends {
		b.Run(bc.name, func(b *testing.B) {
			s := bc.open(b)
			if err := s.ReplaceMemberCache("acc", members, time.Now()); err != nil {
				b.Fatal(err)
			}
			i := 0
			for b.Loop() {
				members[i%n].Status = fmt.Sprintf("s%d", i)
				i++
				if err := s.ReplaceMemberCache("acc", members, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCopyBoltToPostgres: `scimflare migrate` of a state file with
// SCIMFLARE_BENCH_USERS users (default 100k) in 10 of 100 groups each (1M
// memberships) into an empty database, verification included; then the
// way back, BackupFile of that database to a bbolt file. Run with
// -benchtime=1x.
func BenchmarkCopyBoltToPostgres(b *testing.B) {
	users := 100000
	if v, err := strconv.Atoi(os.Getenv("SCIMFLARE_BENCH_USERS")); err == nil && v > 0 {
		users = v
	}
	const groups, perUser = 100, 10
	for b.Loop() {
		src := backends[0].open(b)
		at := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
		err := src.Load(func(put func(store.DumpItem) error) error {
			ids := make([]string, users)
			for i := range users {
				u := benchUser(fmt.Sprintf("user%d@example.com", i))
				u.ID = store.NewID(at.Add(time.Duration(i) * time.Millisecond))
				u.Meta = store.Meta{Created: at, LastModified: at, Version: 1}
				ids[i] = u.ID
				if err := put(store.DumpItem{User: &u}); err != nil {
					return err
				}
			}
			for g := range groups {
				grp := store.Group{ID: store.NewID(at), DisplayName: fmt.Sprintf("group%d", g), Meta: store.Meta{Created: at, LastModified: at, Version: 1}}
				if err := put(store.DumpItem{Group: &grp}); err != nil {
					return err
				}
				for i := range users {
					if d := (i%groups - g + groups) % groups; d < perUser {
						m := store.DumpedMember{GroupID: grp.ID, Membership: store.Membership{MemberRef: store.MemberRef{ID: ids[i], Type: store.MemberUser}, Since: at}}
						if err := put(store.DumpItem{Member: &m}); err != nil {
							return err
						}
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		dst := backends[1].open(b)
		start := time.Now()
		sum, err := store.Copy(b.Context(), src, dst)
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		start = time.Now()
		if _, err := dst.BackupFile(filepath.Join(b.TempDir(), "back.db")); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(took.Seconds(), "copy+verify-s")
		b.ReportMetric(float64(sum.Users+sum.Members)/took.Seconds(), "records/s")
		b.ReportMetric(time.Since(start).Seconds(), "backup-s")
	}
}
