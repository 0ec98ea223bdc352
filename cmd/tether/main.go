// Command tether is an inference engine for interpretability research on
// persona stability: it loads open transformer weights, reads and steers the
// residual stream, and generates text, fully offline.
//
// Usage:
//
//	tether <command> [flags]
//
// Run `tether help` for the list of commands and `tether <command> --help`
// for each command's flags and an example.
package main

import (
	"errors"
	"fmt"
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
	if err := dispatch(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "tether: %v\n", err)
		os.Exit(1)
	}
}

// dispatch finds the longest command name that prefixes args and runs it.
func dispatch(args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage()
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
		return fmt.Errorf("%q needs a subcommand: one of %s", args[0], strings.Join(group, ", "))
	}
	return fmt.Errorf("unknown command %q (run `tether help` for the list)", args[0])
}

func usage() {
	fmt.Println("tether: load open weights, read and steer the residual stream, generate; offline.")
	fmt.Println()
	fmt.Println("Usage: tether <command> [flags]   (tether <command> --help for flags and an example)")
	fmt.Println()
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Printf("  %-16s %s\n", name, commands[name].summary)
	}
}

// newFlags makes a flag set whose --help prints the usage line, the flags and
// an example, in the same form for every command.
func newFlags(name, usageLine, example string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: tether %s %s\n\nFlags:\n%s\nExample:\n  %s\n", name, usageLine, fs.FlagUsages(), example)
	}
	return fs
}

// parseFlags parses args and rejects stray positional arguments, so a typo is
// an error instead of being silently ignored, then reports a missing
// mandatory flag among required.
func parseFlags(fs *pflag.FlagSet, args []string, required ...string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q (flags start with --; see --help)", fs.Name(), fs.Arg(0))
	}
	return require(fs, required...)
}

// require reports a missing mandatory flag.
func require(fs *pflag.FlagSet, names ...string) error {
	for _, n := range names {
		if !fs.Changed(n) {
			return fmt.Errorf("%s: --%s is required (see --help)", fs.Name(), n)
		}
	}
	return nil
}
