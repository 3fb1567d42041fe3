//go:build race

package tests

// raceDetector is whether this test binary was built with -race.
const raceDetector = true
