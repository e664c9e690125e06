// Package serve assembles a running pgtenant from its configuration: pools,
// credential verifiers, TLS, the listener and the proxy. `pgtenant serve`
// and the end-to-end tests both start pgtenant through it.
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/pgtenant/pgtenant/auth"
	"github.com/pgtenant/pgtenant/internal/config"
	"github.com/pgtenant/pgtenant/internal/tenantctx"
	"github.com/pgtenant/pgtenant/pool"
	"github.com/pgtenant/pgtenant/proxy"
)

// Running is a started pgtenant.
type Running struct {
	Addr   string
	Server *proxy.Server
	Pools  map[string]*pool.Pool // by "database/login"

	cancel    context.CancelFunc
	done      chan error
	resolvers []*pgxpool.Pool
	shutdown  time.Duration
}

// Start builds everything from cfg and starts serving.
func Start(ctx context.Context, cfg *config.Config, log *zap.Logger) (*Running, error) {
	key, err := tenantctx.ParseKey(cfg.ContextKey.Get())
	if err != nil {
		return nil, fmt.Errorf("context_key: %w", err)
	}
	roles := auth.RoleMap{Roles: cfg.Roles, CrossTenant: map[string]bool{}}
	for _, r := range cfg.CrossTenantRoles {
		roles.CrossTenant[r] = true
	}
	r := &Running{Pools: map[string]*pool.Pool{}, done: make(chan error, 1), shutdown: cfg.Timeouts.Shutdown}
	fail := func(err error) (*Running, error) {
		r.closePools()
		return nil, err
	}
	dbs := map[string]*proxy.Database{}
	for name, dbc := range cfg.Databases {
		db := &proxy.Database{Name: name, Pools: map[string]*pool.Pool{}}
		var resolver auth.Resolver
		for _, l := range dbc.Logins {
			conn, err := connString(dbc, l)
			if err != nil {
				return fail(fmt.Errorf("database %s: %w", name, err))
			}
			p, err := pool.New(pool.Config{
				Name: name + "/" + l.User, ConnString: conn,
				MaxSize: dbc.Pool.MaxSize, MinIdle: dbc.Pool.MinIdle, MaxWaiters: dbc.Pool.MaxWaiters,
				AcquireTimeout: dbc.Pool.AcquireTimeout, IdleTimeout: dbc.Pool.IdleTimeout,
				MaxLifetime: dbc.Pool.MaxLifetime, CheckAfter: dbc.Pool.CheckAfter,
				ConnectTimeout: cfg.Timeouts.ServerConnect, Logger: log,
				Setup: proxy.SetupServerConn, Heal: proxy.RestoreLoginPassword(l.Password.Get()),
			})
			if err != nil {
				return fail(err)
			}
			r.Pools[name+"/"+l.User] = p
			for _, role := range l.Roles {
				db.Pools[role] = p
			}
			if l.Resolver {
				pcfg, err := pgxpool.ParseConfig(conn)
				if err != nil {
					return fail(err)
				}
				pcfg.MaxConns = 4
				rp, err := pgxpool.NewWithConfig(ctx, pcfg)
				if err != nil {
					return fail(err)
				}
				r.resolvers = append(r.resolvers, rp)
				resolver = auth.PGResolver{Pool: rp}
			}
		}
		a, err := authenticator(cfg, roles, resolver)
		if err != nil {
			return fail(err)
		}
		db.Auth = a
		dbs[name] = db
	}
	var tlsConfig *tls.Config
	if cfg.ClientTLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.ClientTLS.CertFile, cfg.ClientTLS.KeyFile)
		if err != nil {
			return fail(fmt.Errorf("client_tls: %w", err))
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fail(err)
	}
	r.Addr = l.Addr().String()
	r.Server = proxy.New(proxy.Options{Databases: dbs, ContextKey: key, TLS: tlsConfig,
		MaxServerStatements: cfg.PreparedStatements.MaxPerServerConnection,
		MaxClientStatements: cfg.PreparedStatements.MaxPerClient,
		TLSMode:             proxy.TLSMode(cfg.ClientTLS.Mode), LoginTimeout: cfg.Timeouts.Login, Logger: log})
	sctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	go func() { r.done <- r.Server.Serve(sctx, l) }()
	log.Info("pgtenant is serving", zap.String("listen", r.Addr))
	return r, nil
}

func authenticator(cfg *config.Config, roles auth.RoleMap, resolver auth.Resolver) (*auth.Authenticator, error) {
	a := &auth.Authenticator{}
	if len(cfg.JWT.Keys) > 0 {
		var keys []auth.VerificationKey
		for i, k := range cfg.JWT.Keys {
			switch {
			case k.JWKSFile != "":
				ks, err := auth.LoadJWKS(k.JWKSFile)
				if err != nil {
					return nil, err
				}
				keys = append(keys, ks...)
			case k.PEMFile != "":
				pub, err := auth.LoadPEMKey(k.PEMFile)
				if err != nil {
					return nil, err
				}
				keys = append(keys, auth.VerificationKey{KID: k.KID, Alg: k.Alg, Key: pub})
			default:
				secret := k.Secret.Get()
				if secret == "" {
					return nil, fmt.Errorf("jwt.keys[%d]: the secret is empty (is %s set?)", i, k.Secret.Env)
				}
				keys = append(keys, auth.VerificationKey{KID: k.KID, Alg: k.Alg, Key: []byte(secret)})
			}
		}
		v, err := auth.NewJWTVerifier(auth.JWTOptions{
			Keys: keys, Issuers: cfg.JWT.Issuers, Audience: cfg.JWT.Audience, Leeway: cfg.JWT.Leeway,
			RequireExp: *cfg.JWT.RequireExp, TenantClaim: cfg.JWT.TenantClaim, RoleClaim: cfg.JWT.RoleClaim,
			Roles: roles, IssuerMode: cfg.JWT.IssuerMode, Resolver: resolver,
		})
		if err != nil {
			return nil, err
		}
		a.JWT = v
	}
	if resolver != nil {
		a.APIKeys = &auth.APIKeyVerifier{Resolver: resolver, Roles: roles,
			CacheTTL: cfg.APIKeys.CacheTTL, NegativeTTL: cfg.APIKeys.NegativeCacheTTL}
	}
	if a.JWT == nil && a.APIKeys == nil {
		return nil, errors.New("no credential can be verified: configure jwt.keys or a resolver login")
	}
	return a, nil
}

// connString builds the server URL of one login.
func connString(db config.Database, l config.Login) (string, error) {
	password := l.Password.Get()
	if password == "" {
		return "", fmt.Errorf("login %s: no password (is %s set?)", l.User, l.Password.Env)
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(l.User, password),
		Host: net.JoinHostPort(db.Host, strconv.Itoa(db.Port)), Path: "/" + db.DBName}
	q := url.Values{"sslmode": {db.ServerTLS}, "application_name": {"pgtenant"}}
	if db.ServerCAFile != "" {
		q.Set("sslrootcert", db.ServerCAFile)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Stop stops accepting clients, waits up to the shutdown timeout for
// sessions to end, then disconnects the rest and closes the pools.
func (r *Running) Stop() error {
	r.cancel()
	var err error
	select {
	case err = <-r.done:
	case <-time.After(r.shutdown):
		r.Server.CloseClients()
		err = <-r.done
	}
	r.closePools()
	return err
}

// Done reports the end of serving (nil after Stop).
func (r *Running) Done() <-chan error { return r.done }

func (r *Running) closePools() {
	for _, p := range r.Pools {
		p.Close()
	}
	for _, p := range r.resolvers {
		p.Close()
	}
}
