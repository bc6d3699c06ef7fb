//go:build race

package integration

// raceEnabled: the tests run with -race, so the server under test is built with -race too and
// its data races fail the run (see Server.Stop).
const raceEnabled = true
