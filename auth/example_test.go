package auth_test

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/metronome-sync/metronome/auth"
)

// A backend mints a token for one user of one app; the server, which holds
// only the public key, verifies it and checks what a request needs.
func Example() {
	// In production: the key from "metronome token keygen", read with
	// auth.ParsePrivateKey. Here a fixed seed, so the output is stable.
	private := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	public := private.Public().(ed25519.PublicKey)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

	token, err := auth.Mint(private, auth.Claims{
		KeyID:   "2026-12",
		Apps:    []string{"com.example.chat"},
		Rights:  auth.AllRights,
		Expires: now.Add(24 * time.Hour).Unix(),
		Subject: "alice",
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("box:", "https://sync.example.com/k/"+token[:16]+"…/")

	// The server's keys file holds the line auth.KeyLine("2026-12", public).
	verifier, err := auth.ParseKeys([]byte(auth.KeyLine("2026-12", public)))
	if err != nil {
		panic(err)
	}
	claims, err := verifier.Verify(token, now)
	fmt.Println("verified:", claims.Subject, claims.Apps, err)
	fmt.Println("join com.example.chat:", claims.Authorize(auth.RightJoin, "com.example.chat"))
	fmt.Println("join com.example.admin:", claims.Authorize(auth.RightJoin, "com.example.admin"))
	_, err = verifier.Verify(token, now.Add(25*time.Hour))
	fmt.Println("a day later:", err)
	// Output:
	// box: https://sync.example.com/k/mt1.eyJraWQiOiIy…/
	// verified: alice [com.example.chat] <nil>
	// join com.example.chat: <nil>
	// join com.example.admin: token is not for app com.example.admin (it is for com.example.chat)
	// a day later: token expired at 2026-12-02T09:00:00Z
}
