// Command fakecloudflare runs the stateful fake of Cloudflare's account
// member and IAM APIs (sync/cloudflare/cftest) on loopback, outside the
// tests, so a person can point scimflare at it and watch members change.
// It is a development tool: it keeps everything in memory, accepts one
// bearer token, and validates every request against the OpenAPI schema,
// printing the ones that fail.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// devTB lets the test fake run in a program: it implements the few
// testing.TB methods the fake calls. Any other method would panic on the
// nil embedded interface, which the fake never calls.
type devTB struct {
	testing.TB
	cleanups []func()
}

func (*devTB) Helper()                           {}
func (d *devTB) Cleanup(f func())                { d.cleanups = append(d.cleanups, f) }
func (*devTB) Fatalf(format string, args ...any) { log.Fatalf(format, args...) }
func (*devTB) Errorf(format string, args ...any) { log.Printf(format, args...) }
func (*devTB) Logf(format string, args ...any)   { log.Printf(format, args...) }
func (*devTB) Name() string                      { return "fakecloudflare" }
func (d *devTB) close() {
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
}

func main() {
	accounts := flag.String("accounts", "0123456789abcdef0123456789abcdef,fedcba9876543210fedcba9876543210,00112233445566778899aabbccddeeff",
		"comma-separated account ids (default: the accounts of config.example.yaml)")
	token := flag.String("token", "dev-cloudflare-token", "the bearer token the fake accepts")
	flag.Parse()

	tb := &devTB{}
	srv := cftest.New(tb, cftest.Options{Accounts: strings.Split(*accounts, ","), Token: *token, AllowInvalid: true})
	// The fake's clock is manual (tests move it); here it follows real time
	// so its rate-limit window slides.
	go func() {
		for range time.Tick(time.Second) {
			srv.Clock().Advance(time.Second)
		}
	}()
	fmt.Printf("fake Cloudflare API at %s (token %q)\n", srv.URL(), *token)
	fmt.Printf("  members: curl -s -H 'Authorization: Bearer %s' %s/accounts/%s/members\n", *token, srv.URL(), strings.Split(*accounts, ",")[0])
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	tb.close()
}
