// Package pool keeps server connections for one (database, login role)
// pair. Connections are dialled with pgconn (so SCRAM and TLS to the server
// are the library's), then taken over as raw protocol streams for the proxy
// to drive. The whole API is Acquire, Release, Destroy and Stat.
//
// The pool never hands out a connection it has not seen idle: Release is for
// connections whose last ReadyForQuery said 'I'; anything else must be
// Destroyed. A client that cannot get a connection within AcquireTimeout, or
// finds the wait queue full, gets an *ExhaustedError naming the pool.
package pool

import (
	"bufio"
	"container/list"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
)

// Config configures a pool.
type Config struct {
	Name           string // shown in errors and logs, e.g. "app/erun_proxy_tenant"
	ConnString     string // libpq-style URL or keyword/value string for pgconn
	MaxSize        int
	MinIdle        int
	MaxWaiters     int
	AcquireTimeout time.Duration
	IdleTimeout    time.Duration
	MaxLifetime    time.Duration
	CheckAfter     time.Duration // idle longer than this: check before reuse
	ConnectTimeout time.Duration
	Logger         *zap.Logger
	// Setup runs on every new connection before it is first lent, while
	// pgconn still drives it; its result becomes the connection's State.
	// Returning ErrRedial closes the connection and dials once more (Setup
	// repaired something that only a new connection picks up).
	Setup func(ctx context.Context, pc *pgconn.PgConn) (any, error)
	// Heal repairs the login role through a working connection when the
	// server refuses a new one with invalid_password (28P01): any session
	// of the login role may change the role's own password, and PostgreSQL
	// cannot forbid it. The pool then waits (up to AcquireTimeout) for a
	// connection to be released, heals through it and dials again.
	Heal func(c *Conn) error
}

// ErrRedial asks the pool to replace the connection Setup was given.
var ErrRedial = errors.New("pool: dial again")

// LexerSettings change how PostgreSQL splits a query string; the proxy's
// scanner splits it the same way only with these values. Every server
// connection starts with them (start-up values are what RESET ALL returns
// to, above any setting of the login role); the proxy watches that they
// stay so.
var LexerSettings = map[string]string{
	"client_encoding":             "UTF8",
	"standard_conforming_strings": "on",
}

// pinnedStartup are the start-up parameters every server connection gets
// unless the connection string names them: LexerSettings, and
// local_preload_libraries empty, for another reason: a login role may set
// it on itself, and a library that does not load makes every new
// connection fail at start, before pgtenant could repair the role.
var pinnedStartup = func() map[string]string {
	m := map[string]string{"local_preload_libraries": ""}
	for k, v := range LexerSettings {
		m[k] = v
	}
	return m
}()

// Conn is a server connection on loan. R and W buffer the raw stream and
// stay with the connection across loans.
type Conn struct {
	Net       net.Conn
	R         *bufio.Reader
	W         *bufio.Writer
	PID       uint32
	SecretKey []byte
	// Params are the ParameterStatus values the server reported at start-up.
	Params map[string]string
	// State belongs to the borrower (the proxy keeps its prepared
	// statements and the context serial here); the pool never reads it.
	// Config.Setup gives its first value.
	State any

	addr     string
	created  time.Time
	lastUsed time.Time
}

// ExhaustedError is returned when no connection could be had in time.
type ExhaustedError struct {
	Pool   string
	Reason string
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("pool %s: %s", e.Pool, e.Reason)
}

// waiter is a client queued for a connection. granted is set (under the
// pool's lock) by whoever takes it off the queue to hand it something; the
// value follows on ch: a connection, or nil for "a slot is free, dial".
type waiter struct {
	ch      chan *Conn
	granted bool
}

// Stat is a snapshot of a pool.
type Stat struct {
	Total, Idle, InUse, Waiting  int
	Acquired, Dialled, Destroyed int64
	TimedOut, Rejected           int64
}

// Pool is safe for concurrent use.
type Pool struct {
	cfg     Config
	pgcfg   *pgconn.Config
	log     *zap.Logger
	mu      sync.Mutex
	idle    []*Conn    // LIFO: the warmest connection (prepared statements) first
	waiters *list.List // of *waiter
	total   int        // idle + lent + being dialled
	stat    Stat
	closed  bool
	// healers wait for a released connection to heal through (see Heal).
	healers []chan *Conn
	done    chan struct{}
	wg      sync.WaitGroup
}

// New validates cfg and starts the pool's janitor.
func New(cfg Config) (*Pool, error) {
	if cfg.MaxSize < 1 {
		return nil, errors.New("pool: MaxSize must be at least 1")
	}
	pgcfg, err := pgconn.ParseConfig(cfg.ConnString)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", cfg.Name, err)
	}
	if cfg.ConnectTimeout > 0 {
		pgcfg.ConnectTimeout = cfg.ConnectTimeout
	}
	for k, v := range pinnedStartup {
		if _, given := pgcfg.RuntimeParams[k]; !given {
			pgcfg.RuntimeParams[k] = v
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	p := &Pool{cfg: cfg, pgcfg: pgcfg, log: cfg.Logger.With(zap.String("pool", cfg.Name)),
		waiters: list.New(), done: make(chan struct{})}
	p.wg.Add(1)
	go p.janitor()
	return p, nil
}

// Name is the pool's name.
func (p *Pool) Name() string { return p.cfg.Name }

// Acquire lends a connection, dialling one if the pool has room.
func (p *Pool) Acquire(ctx context.Context) (*Conn, error) {
	deadline := time.Now().Add(p.cfg.AcquireTimeout)
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, &ExhaustedError{Pool: p.cfg.Name, Reason: "the pool is shutting down"}
		}
		if n := len(p.idle); n > 0 {
			c := p.idle[n-1]
			p.idle = p.idle[:n-1]
			p.stat.Acquired++
			p.mu.Unlock()
			if c, ok := p.vet(ctx, c); ok {
				return c, nil
			}
			continue
		}
		if p.total < p.cfg.MaxSize {
			p.total++
			p.stat.Acquired++
			p.mu.Unlock()
			return p.dialReserved(ctx)
		}
		if p.waiters.Len() >= p.cfg.MaxWaiters {
			p.stat.Rejected++
			p.mu.Unlock()
			return nil, &ExhaustedError{Pool: p.cfg.Name, Reason: fmt.Sprintf("all %d server connections are busy and %d clients are already waiting", p.cfg.MaxSize, p.cfg.MaxWaiters)}
		}
		w := &waiter{ch: make(chan *Conn, 1)}
		elem := p.waiters.PushBack(w)
		ch := w.ch
		p.mu.Unlock()

		timer := time.NewTimer(time.Until(deadline))
		select {
		case c, ok := <-ch:
			timer.Stop()
			if !ok {
				return nil, &ExhaustedError{Pool: p.cfg.Name, Reason: "the pool is shutting down"}
			}
			p.mu.Lock()
			p.stat.Acquired++
			p.mu.Unlock()
			if c == nil { // capacity was freed for us: total already counts us
				return p.dialReserved(ctx)
			}
			if c, ok := p.vet(ctx, c); ok {
				return c, nil
			}
			continue
		case <-timer.C:
			p.abandon(elem, w)
			p.mu.Lock()
			p.stat.TimedOut++
			p.mu.Unlock()
			return nil, &ExhaustedError{Pool: p.cfg.Name, Reason: fmt.Sprintf("no server connection became free within %s (all %d busy)", p.cfg.AcquireTimeout, p.cfg.MaxSize)}
		case <-ctx.Done():
			timer.Stop()
			p.abandon(elem, w)
			return nil, ctx.Err()
		}
	}
}

// abandon takes a waiter off the queue. If it was already granted, what
// it was handed is on its way: wait for it and give it back, so that no
// connection or slot is ever stranded in an abandoned channel.
func (p *Pool) abandon(elem *list.Element, w *waiter) {
	p.mu.Lock()
	granted := w.granted
	if !granted {
		p.waiters.Remove(elem)
	}
	p.mu.Unlock()
	if !granted {
		return
	}
	c, ok := <-w.ch
	switch {
	case !ok: // the pool closed
	case c == nil:
		p.releaseCapacity()
	default:
		p.Release(c)
	}
}

// vet checks a connection taken from the idle list: too old ones are
// closed, long-idle ones are probed. On failure the slot is freed.
func (p *Pool) vet(ctx context.Context, c *Conn) (*Conn, bool) {
	now := time.Now()
	if p.cfg.MaxLifetime > 0 && now.Sub(c.created) > p.cfg.MaxLifetime {
		p.Destroy(c)
		return nil, false
	}
	if !quiet(c) {
		// The server spoke while the connection was idle: it was terminated
		// (a FATAL then EOF) or is out of step. Never lend it.
		p.log.Info("discarding a server connection that was closed or spoke while idle")
		p.Destroy(c)
		return nil, false
	}
	if p.cfg.CheckAfter > 0 && now.Sub(c.lastUsed) > p.cfg.CheckAfter {
		if err := p.check(ctx, c); err != nil {
			p.log.Info("discarding a server connection that failed its check", zap.Error(err))
			p.Destroy(c)
			return nil, false
		}
	}
	return c, true
}

// quiet reports whether an idle connection has nothing to read: no
// buffered bytes, and a non-blocking peek at the socket finds nothing (EOF
// or data both mean the server spoke while idle). One syscall, no wait.
func quiet(c *Conn) bool {
	if c.R.Buffered() > 0 {
		return false
	}
	nc := c.Net
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn() // encrypted bytes waiting are just as telling
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	idle := true
	var buf [1]byte
	raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		idle = errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK)
		return true // never wait for readiness
	})
	return idle
}

// check sends an empty query and expects EmptyQueryResponse, ReadyForQuery 'I'.
func (p *Pool) check(ctx context.Context, c *Conn) error {
	deadline := time.Now().Add(5 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.Net.SetDeadline(deadline)
	defer c.Net.SetDeadline(time.Time{})
	if _, err := c.W.Write([]byte{'Q', 0, 0, 0, 5, 0}); err != nil {
		return err
	}
	if err := c.W.Flush(); err != nil {
		return err
	}
	for {
		typ, body, err := readMsg(c.R)
		if err != nil {
			return err
		}
		switch typ {
		case 'I', 'N', 'S': // EmptyQueryResponse, notices, parameter changes
		case 'Z':
			if len(body) != 1 || body[0] != 'I' {
				return fmt.Errorf("server not idle after check (status %q)", body)
			}
			return nil
		default:
			return fmt.Errorf("unexpected message %q during check", typ)
		}
	}
}

func readMsg(r *bufio.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
	if n < 0 || n > 1<<20 {
		return 0, nil, fmt.Errorf("bad message length %d", n)
	}
	body := make([]byte, n)
	_, err := io.ReadFull(r, body)
	return hdr[0], body, err
}

// dialReserved dials for a slot already counted in total.
func (p *Pool) dialReserved(ctx context.Context) (*Conn, error) {
	c, err := p.dial(ctx)
	if err != nil {
		p.releaseCapacity()
		return nil, err
	}
	return c, nil
}

func (p *Pool) dial(ctx context.Context) (*Conn, error) {
	c, err := p.dialOnce(ctx)
	if errors.Is(err, ErrRedial) {
		c, err = p.dialOnce(ctx)
	}
	if errors.Is(err, ErrRedial) {
		err = fmt.Errorf("pool %s: the new connection still needs repair after a second dial", p.cfg.Name)
	}
	return c, err
}

func (p *Pool) dialOnce(ctx context.Context) (*Conn, error) {
	pc, err := pgconn.ConnectConfig(ctx, p.pgcfg)
	if err != nil && p.cfg.Heal != nil && invalidPassword(err) && p.heal(ctx) {
		pc, err = pgconn.ConnectConfig(ctx, p.pgcfg)
	}
	if err != nil {
		return nil, fmt.Errorf("pool %s: connect to the server: %w", p.cfg.Name, err)
	}
	var state any
	if p.cfg.Setup != nil {
		if state, err = p.cfg.Setup(ctx, pc); err != nil {
			pc.Close(ctx)
			if errors.Is(err, ErrRedial) {
				return nil, err
			}
			return nil, fmt.Errorf("pool %s: set up the new connection: %w", p.cfg.Name, err)
		}
	}
	// pgconn may still have a background reader on the socket, or bytes in
	// its own buffer: either would steal the first responses meant for
	// the proxy. SyncConn stops and drains both before the takeover.
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(ctx)
		return nil, fmt.Errorf("pool %s: sync the new connection: %w", p.cfg.Name, err)
	}
	h, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return nil, err
	}
	now := time.Now()
	p.mu.Lock()
	p.stat.Dialled++
	p.mu.Unlock()
	return &Conn{
		Net: h.Conn, R: bufio.NewReaderSize(h.Conn, 32<<10), W: bufio.NewWriterSize(h.Conn, 32<<10),
		PID: h.PID, SecretKey: h.SecretKey, Params: h.ParameterStatuses, State: state,
		addr: h.Conn.RemoteAddr().String(), created: now, lastUsed: now,
	}, nil
}

func invalidPassword(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "28P01"
}

// heal runs Heal through an idle connection, or the next one released.
func (p *Pool) heal(ctx context.Context) bool {
	p.mu.Lock()
	var c *Conn
	var ch chan *Conn
	if n := len(p.idle); n > 0 {
		c = p.idle[n-1]
		p.idle = p.idle[:n-1]
	} else {
		ch = make(chan *Conn, 1)
		p.healers = append(p.healers, ch)
	}
	p.mu.Unlock()
	if c == nil {
		timer := time.NewTimer(p.cfg.AcquireTimeout)
		defer timer.Stop()
		select {
		case c = <-ch:
		case <-timer.C:
		case <-ctx.Done():
		}
		if c == nil {
			p.mu.Lock()
			for i, h := range p.healers {
				if h == ch {
					p.healers = append(p.healers[:i], p.healers[i+1:]...)
					break
				}
			}
			p.mu.Unlock()
			select { // handed one just now after all
			case c = <-ch:
			default:
				p.log.Error("the server refuses the login role's password and no connection came free to restore it")
				return false
			}
		}
	}
	if !quiet(c) {
		p.Destroy(c)
		return false
	}
	if err := p.cfg.Heal(c); err != nil {
		p.log.Error("could not restore the login role's password", zap.Error(err))
		p.Destroy(c)
		return false
	}
	p.log.Warn("the login role's password had been changed from one of its sessions; pgtenant restored the configured one")
	p.Release(c)
	return true
}

// Release returns an idle, clean connection.
func (p *Pool) Release(c *Conn) {
	c.lastUsed = time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.Destroy(c)
		return
	}
	if len(p.healers) > 0 {
		h := p.healers[0]
		p.healers = p.healers[1:]
		p.mu.Unlock()
		h <- c
		return
	}
	if w := p.popWaiter(); w != nil {
		p.mu.Unlock()
		w.ch <- c
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// Destroy closes a connection that must not be reused (broken, or left in a
// transaction) and frees its slot.
func (p *Pool) Destroy(c *Conn) {
	// Terminate politely; the server rolls back whatever was open.
	c.Net.SetWriteDeadline(time.Now().Add(time.Second))
	c.Net.Write([]byte{'X', 0, 0, 0, 4})
	c.Net.Close()
	p.mu.Lock()
	p.stat.Destroyed++
	p.mu.Unlock()
	p.releaseCapacity()
}

func (p *Pool) releaseCapacity() {
	p.mu.Lock()
	if !p.closed {
		if w := p.popWaiter(); w != nil {
			p.mu.Unlock()
			w.ch <- nil // the waiter dials in our slot
			return
		}
	}
	p.total--
	p.mu.Unlock()
}

// popWaiter takes the first waiter off the queue and marks it granted.
// Call with p.mu held.
func (p *Pool) popWaiter() *waiter {
	e := p.waiters.Front()
	if e == nil {
		return nil
	}
	p.waiters.Remove(e)
	w := e.Value.(*waiter)
	w.granted = true
	return w
}

// Stat returns counters and gauges.
func (p *Pool) Stat() Stat {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stat
	s.Total, s.Idle, s.Waiting = p.total, len(p.idle), p.waiters.Len()
	s.InUse = p.total - len(p.idle)
	return s
}

// Cancel asks the server to cancel whatever c is running right now.
func (p *Pool) Cancel(ctx context.Context, c *Conn) error {
	d := net.Dialer{Timeout: 5 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	buf := make([]byte, 12+len(c.SecretKey))
	binary.BigEndian.PutUint32(buf[0:], uint32(len(buf)))
	binary.BigEndian.PutUint32(buf[4:], 80877102)
	binary.BigEndian.PutUint32(buf[8:], c.PID)
	copy(buf[12:], c.SecretKey)
	_, err = nc.Write(buf)
	return err
}

// Close closes idle connections and stops the janitor; lent connections are
// destroyed when they come back.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	for e := p.waiters.Front(); e != nil; e = e.Next() {
		w := e.Value.(*waiter)
		w.granted = true
		close(w.ch)
	}
	p.waiters.Init()
	p.mu.Unlock()
	close(p.done)
	for _, c := range idle {
		p.Destroy(c)
	}
	p.wg.Wait()
}

// janitor closes connections idle past IdleTimeout (keeping MinIdle) and
// keeps MinIdle connections dialled.
func (p *Pool) janitor() {
	defer p.wg.Done()
	interval := time.Second
	if p.cfg.IdleTimeout > 0 && p.cfg.IdleTimeout/4 < interval {
		interval = max(p.cfg.IdleTimeout/4, 10*time.Millisecond)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		now := time.Now()
		var expired []*Conn
		p.mu.Lock()
		keep := p.idle[:0]
		for i, c := range p.idle {
			tooIdle := p.cfg.IdleTimeout > 0 && now.Sub(c.lastUsed) > p.cfg.IdleTimeout && len(p.idle)-i > p.cfg.MinIdle
			tooOld := p.cfg.MaxLifetime > 0 && now.Sub(c.created) > p.cfg.MaxLifetime
			if tooIdle || tooOld {
				expired = append(expired, c)
			} else {
				keep = append(keep, c)
			}
		}
		p.idle = keep
		missing := p.cfg.MinIdle - len(p.idle)
		if room := p.cfg.MaxSize - p.total; missing > room {
			missing = room
		}
		if missing > 0 {
			p.total += missing
		}
		p.mu.Unlock()
		for _, c := range expired {
			p.Destroy(c)
		}
		for range max(missing, 0) {
			ctx, cancel := context.WithTimeout(context.Background(), p.pgcfg.ConnectTimeout+time.Second)
			c, err := p.dial(ctx)
			cancel()
			if err != nil {
				p.releaseCapacity()
				p.log.Warn("could not keep min_idle connections", zap.Error(err))
				continue
			}
			p.Release(c)
		}
	}
}
