package pool_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgtenant/pgtenant/internal/pgtest"
	"github.com/pgtenant/pgtenant/pool"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newPool(t *testing.T, size int, timeout time.Duration) *pool.Pool {
	t.Helper()
	_, dsn := pgtest.Shared(t).CreateDatabase(t)
	p, err := pool.New(pool.Config{Name: "test/pool", ConnString: dsn, MaxSize: size, MaxWaiters: 1000,
		AcquireTimeout: timeout, IdleTimeout: time.Minute, MaxLifetime: time.Hour, CheckAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// TestTimeoutsNeverStrandASlot: waiters time out while connections are
// being handed over; afterwards the pool still has its one slot.
func TestTimeoutsNeverStrandASlot(t *testing.T) {
	p := newPool(t, 1, 2*time.Millisecond)
	ctx := context.Background()
	var wg sync.WaitGroup
	var got, timedOut atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				c, err := p.Acquire(ctx)
				var ex *pool.ExhaustedError
				switch {
				case errors.As(err, &ex):
					timedOut.Add(1)
					continue
				case err != nil:
					t.Error(err)
					return
				}
				got.Add(1)
				time.Sleep(50 * time.Microsecond)
				p.Release(c)
			}
		}()
	}
	wg.Wait()
	if got.Load() == 0 || timedOut.Load() == 0 {
		t.Fatalf("acquired %d, timed out %d: the test must exercise both", got.Load(), timedOut.Load())
	}
	st := p.Stat()
	if st.Total != 1 || st.Idle != 1 || st.Waiting != 0 {
		t.Fatalf("after the storm: %+v; want the one connection idle", st)
	}
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatalf("the slot was stranded: %v", err)
	}
	p.Release(c)
}

func TestQueueBoundAndTimeoutNameThePool(t *testing.T) {
	p := newPool(t, 1, 100*time.Millisecond)
	ctx := context.Background()
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = p.Acquire(ctx)
	var ex *pool.ExhaustedError
	if !errors.As(err, &ex) || ex.Pool != "test/pool" || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("err = %v after %s; want ExhaustedError for test/pool after the timeout", err, time.Since(start))
	}
	p.Destroy(c)
	// The destroyed connection's slot is usable again.
	c, err = p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Release(c)
	if st := p.Stat(); st.Destroyed != 1 || st.Dialled != 2 || st.Total != 1 {
		t.Fatalf("stat %+v", st)
	}
}
