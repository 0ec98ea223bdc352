package main

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// versionString describes this binary from its build information: the
// module version ("(devel)" for a build from a checkout), the VCS revision
// and time (with "+modified" for uncommitted changes) and the Go version.
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "tether (no build information)"
	}
	return formatVersion(bi)
}

// formatVersion is versionString for the given build information.
func formatVersion(bi *debug.BuildInfo) string {
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	parts := []string{"tether", bi.Main.Version}
	if parts[1] == "" {
		parts[1] = "(devel)"
	}
	if rev := settings["vcs.revision"]; rev != "" {
		if settings["vcs.modified"] == "true" {
			rev += "+modified"
		}
		parts = append(parts, "revision "+rev)
	}
	if t := settings["vcs.time"]; t != "" {
		parts = append(parts, "("+t+")")
	}
	return fmt.Sprintf("%s, %s", strings.Join(parts, " "), bi.GoVersion)
}
