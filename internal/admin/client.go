package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stepup-dev/stepup/mfa"
	"github.com/stepup-dev/stepup/session"
)

// Client calls a running server's admin endpoint.
type Client struct {
	base, token string
	hc          *http.Client
}

// NewClient reads the token and the recorded address from dataDir; listen,
// the configured HTTP listener, is the address when none is recorded. A
// listener with TLS (httpTLS) is refused: the client speaks plain HTTP on
// loopback.
func NewClient(dataDir, listen string, httpTLS bool) (*Client, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, TokenFile))
	if err != nil {
		return nil, err
	}
	if httpTLS {
		return nil, errors.New("the HTTP listener uses TLS; stop the server or use the Redis store")
	}
	if a, err := os.ReadFile(filepath.Join(dataDir, AddressFile)); err == nil {
		listen = strings.TrimSpace(string(a))
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return &Client{
		base:  "http://" + net.JoinHostPort(host, port),
		token: strings.TrimSpace(string(b)),
		hc:    &http.Client{Timeout: 10 * time.Second},
	}, nil
}

func (c *Client) do(ctx context.Context, method, path, user, id string, out any) error {
	q := url.Values{"user": {user}}
	if id != "" {
		q.Set("id", id)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("admin endpoint: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// ListUser implements [Ops].
func (c *Client) ListUser(ctx context.Context, user string) (session.Sessions, error) {
	var s session.Sessions
	err := c.do(ctx, http.MethodGet, SessionsPath, user, "", &s)
	return s, err
}

// Revoke implements [Ops].
func (c *Client) Revoke(ctx context.Context, user, id string) (int, error) {
	var r struct{ Revoked int }
	err := c.do(ctx, http.MethodDelete, SessionsPath, user, id, &r)
	return r.Revoked, err
}

// ResetFactors implements [Ops].
func (c *Client) ResetFactors(ctx context.Context, user string) (mfa.ResetResult, error) {
	var res mfa.ResetResult
	err := c.do(ctx, http.MethodDelete, FactorsPath, user, "", &res)
	return res, err
}
