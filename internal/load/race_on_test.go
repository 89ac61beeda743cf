//go:build race

package load

// raceEnabled: the race detector slows everything several times, so tests
// that depend on the machine keeping up with a schedule relax.
const raceEnabled = true
