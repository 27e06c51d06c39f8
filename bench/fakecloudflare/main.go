// Command fakecloudflare runs the stateful fake of Cloudflare's account
// member and IAM APIs (sync/cloudflare/cloudflarefake) on loopback, outside
// the tests, so a person can point scimflare at it and watch members change.
// It is a development tool: it keeps everything in memory, accepts one
// bearer token, and prints every member change. Unlike the tests' cftest it
// does not validate requests against the OpenAPI schema, so it links
// neither `testing` nor the validator. `scimflare serve --dev` runs the
// same fake inside the daemon.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/scimflare/scimflare/sync/cloudflare/cloudflarefake"
)

func main() {
	accounts := flag.String("accounts", "0123456789abcdef0123456789abcdef,fedcba9876543210fedcba9876543210,00112233445566778899aabbccddeeff",
		"comma-separated account ids (default: the accounts of config.example.yaml)")
	token := flag.String("token", "dev-cloudflare-token", "the bearer token the fake accepts")
	flag.Parse()

	// The fake's clock is manual (tests move it); here it follows real
	// time so its rate-limit window slides.
	clock := cloudflarefake.NewClock(time.Now())
	srv, err := cloudflarefake.New(cloudflarefake.Options{
		Accounts: strings.Split(*accounts, ","), Token: *token, Clock: clock,
		OnChange: func(c cloudflarefake.Change) { fmt.Println(c) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	go func() {
		for range time.Tick(time.Second) {
			clock.Advance(time.Second)
		}
	}()
	fmt.Printf("fake Cloudflare API at %s (token %q)\n", srv.URL(), *token)
	fmt.Printf("  members: curl -s -H 'Authorization: Bearer %s' %s/accounts/%s/members\n", *token, srv.URL(), strings.Split(*accounts, ",")[0])
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}
