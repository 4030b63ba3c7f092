package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/store/storetest"
)

// benchParallelism times GOMAXPROCS is the number of concurrent callers:
// a server handles many enrollments at once, and group commit needs them.
const benchParallelism = 64

// BenchmarkRecordIssuance measures durable issuance records per second
// (certificate + audit record, one fsync'ed commit per batch), with many
// concurrent callers.
func BenchmarkRecordIssuance(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchRecordIssuance(b, storetest.NewSQLite(b), noToken) })
	b.Run("sqlite-token", func(b *testing.B) { benchRecordIssuance(b, storetest.NewSQLite(b), withToken) })
	b.Run("sqlite-token-checked", func(b *testing.B) { benchRecordIssuance(b, storetest.NewSQLite(b), checkedToken) })
	// 8 callers at -cpu 1: the load shape of scripts/bench-stepca.sh (8
	// clients, the server pinned to one core), where batches are small.
	b.Run("sqlite-token-checked-8", func(b *testing.B) { benchRecordIssuance(b, storetest.NewSQLite(b), checkedToken8) })
	b.Run("postgres", func(b *testing.B) { benchRecordIssuance(b, openPostgres(b), noToken) })
	b.Run("postgres-token", func(b *testing.B) { benchRecordIssuance(b, openPostgres(b), withToken) })
	b.Run("postgres-token-checked", func(b *testing.B) { benchRecordIssuance(b, openPostgres(b), checkedToken) })
}

// How a benchmarked issuance uses a token.
const (
	noToken       = iota
	withToken     // redeemed
	checkedToken  // redeemed, its secret hash and identity checked, the (absent) gateway role checked, as an enrollment's
	checkedToken8 // checkedToken with 8 callers per GOMAXPROCS instead of benchParallelism
)

// benchRecordIssuance records b.N issuances; with a token (created before
// the timer starts) in each unless token is noToken.
func benchRecordIssuance(b *testing.B, s store.Store, token int) {
	ctx := context.Background()
	issuances := make([]store.Issuance, b.N)
	tokens := make([]store.Token, b.N)
	for i := range issuances {
		// Like a server's: issuance times increase, identities differ.
		c := storetest.NewCertificate(fmt.Sprintf("spiffe://example.org/bench/%d", i), storetest.T0.Add(time.Duration(i)*time.Microsecond))
		if token == noToken {
			issuances[i] = storetest.NewIssuance(c, "")
			continue
		}
		tokens[i] = storetest.NewToken(c.Identity, storetest.T0, time.Hour)
		issuances[i] = storetest.NewIssuance(c, tokens[i].ID)
		if token == checkedToken || token == checkedToken8 {
			issuances[i].TokenSecretHash, issuances[i].TokenIdentity = tokens[i].SecretHash, tokens[i].Identity
			issuances[i].GatewayRole = new(false)
		}
	}
	if token != noToken {
		// Created by concurrent callers, so they group-commit: one commit
		// per token took longer than the benchmark itself.
		var wg sync.WaitGroup
		var nextToken atomic.Int64
		for range benchParallelism {
			wg.Go(func() {
				for i := nextToken.Add(1) - 1; i < int64(len(tokens)); i = nextToken.Add(1) - 1 {
					if err := s.CreateToken(ctx, tokens[i], storetest.TokenEntry(tokens[i])); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if b.Failed() {
			return
		}
	}
	var next atomic.Int64
	if token == checkedToken8 {
		b.SetParallelism(8)
	} else {
		b.SetParallelism(benchParallelism)
	}
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			is := issuances[next.Add(1)-1]
			if err := s.RecordIssuance(ctx, is); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "issuances/s")
	// CPU per issuance is steadier than wall time on a shared machine.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// cpuTime is the CPU time (user + system) this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
