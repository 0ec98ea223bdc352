// Command tether is an inference engine for interpretability research on
// persona stability: it loads open transformer weights, reads and steers the
// residual stream, and generates text, fully offline.
//
// Usage:
//
//	tether <command> [flags]
//
// Run `tether help` for the list of commands and `tether <command> --help`
// (or `tether help <command>`) for each command's flags and an example.
// Exit status: 0 on success and for --help, 1 when the work fails, 2 for a
// mistake in the command line.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// command is one subcommand: its one-line summary, an example, and the
// function that parses its flags and runs it.
type command struct {
	summary string
	run     func(args []string) error
}

// commands maps a command name (possibly two words, e.g. "bench perf") to its
// implementation. Each run function lives in a file named after the command.
var commands = map[string]command{}

// register adds a command; called from init functions beside each command.
func register(name, summary string, run func(args []string) error) {
	commands[name] = command{summary: summary, run: run}
}

func main() {
	os.Exit(exitStatus(dispatch(os.Args[1:]), os.Stderr))
}

// exitStatus prints err to stderr and maps it to the exit status: 0 for none
// or a --help, 2 for a usage error, 1 for anything else.
func exitStatus(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "tether: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "tether: %v\n", err)
		return 1
	}
}

// usageError is a mistake in the command line (exit status 2), as opposed
// to a failure of the work itself (exit status 1).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usageErrorf formats a usageError.
func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// dispatch finds the longest command name that prefixes args and runs it.
func dispatch(args []string) error {
	if len(args) == 0 {
		usage(os.Stderr)
		return usageErrorf("no command given")
	}
	switch args[0] {
	case "help", "-h", "--help":
		if len(args) == 1 || args[0] != "help" {
			usage(os.Stdout)
			return nil
		}
		// `tether help CMD` is `tether CMD --help`.
		return dispatch(append(append([]string(nil), args[1:]...), "--help"))
	case "version", "--version":
		fmt.Println(versionString())
		return nil
	}
	if len(args) >= 2 {
		if c, ok := commands[args[0]+" "+args[1]]; ok {
			return c.run(args[2:])
		}
	}
	if c, ok := commands[args[0]]; ok {
		return c.run(args[1:])
	}
	var group []string
	for name := range commands {
		if strings.HasPrefix(name, args[0]+" ") {
			group = append(group, name)
		}
	}
	if len(group) > 0 {
		sort.Strings(group)
		if len(args) == 2 && (args[1] == "-h" || args[1] == "--help") {
			for _, name := range group {
				fmt.Printf("  %-16s %s\n", name, commands[name].summary)
			}
			return nil
		}
		return usageErrorf("%q needs a subcommand: one of %s", args[0], strings.Join(group, ", "))
	}
	return usageErrorf("unknown command %q (run `tether help` for the list)", args[0])
}

// usage writes the list of commands to w.
func usage(w io.Writer) {
	fmt.Fprintln(w, "tether: load open weights, read and steer the residual stream, generate; offline.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: tether <command> [flags]   (tether <command> --help, or tether help <command>, for flags and an example)")
	fmt.Fprintln(w, "       tether version")
	fmt.Fprintln(w)
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-16s %s\n", name, commands[name].summary)
	}
}

// newFlags makes a flag set whose --help prints the usage line, the flags and
// an example to stdout, in the same form for every command.
func newFlags(name, usageLine, example string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(os.Stdout, "Usage: tether %s %s\n\nFlags:\n%s\nExample:\n  %s\n", name, usageLine, fs.FlagUsages(), example)
	}
	return fs
}

// parseFlags parses args and rejects stray positional arguments, so a typo is
// an error instead of being silently ignored, then reports a missing
// mandatory flag among required and a numeric value outside its declared
// range (see limit). Every such mistake is a usageError.
func parseFlags(fs *pflag.FlagSet, args []string, required ...string) error {
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("%s: unexpected argument %q (flags start with --; see --help)", fs.Name(), fs.Arg(0))
	}
	return require(fs, required...)
}

// require reports a missing mandatory flag as a usageError.
func require(fs *pflag.FlagSet, names ...string) error {
	for _, n := range names {
		if !fs.Changed(n) {
			return usageErrorf("%s: --%s is required (see --help)", fs.Name(), n)
		}
	}
	return nil
}

// parseArgs parses args, allowing positional arguments, and checks the
// numeric flags' ranges; a parse error is a usageError naming the command.
func parseArgs(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageErrorf("%s: %w (see --help)", fs.Name(), err)
	}
	return checkLimits(fs)
}
