//go:build !simbugs

package reflector

// bugsBuilt is false in normal builds: see bugSwitches.
const bugsBuilt = false
