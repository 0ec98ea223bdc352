package main

import (
	"fmt"
	"time"

	"tether/bench"
)

func init() {
	register("bench compare", "several models' reports side by side: capability, consistency, variance ratio (table and plot)", runBenchCompare)
}

func runBenchCompare(args []string) error {
	fs := newFlags("bench compare", "REPORT... [--out DIR]",
		"tether bench compare runs/qwen-0.6b/drift/report.json runs/qwen-32b/drift/report.json runs/qwen-32b/variance/report.json --out /tmp/compare")
	out := fs.String("out", "", "also write compare.json, compare.md and compare.svg into this directory")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageErrorf("bench compare: give the report.json files to compare (see --help)")
	}
	if *out != "" {
		if err := checkOutputDir("out", *out); err != nil {
			return fmt.Errorf("bench compare: %w", err)
		}
	}
	c, err := bench.CompareReports(fs.Args(), time.Now())
	if err != nil {
		return err
	}
	fmt.Print(bench.RenderCompareMarkdown(c))
	if *out != "" {
		if err := bench.WriteComparison(*out, c); err != nil {
			return err
		}
		fmt.Printf("\nwrote %s/{%s,%s,%s}\n", *out, bench.CompareJSONFile, bench.CompareMDFile, bench.ComparePlotFile)
	}
	return nil
}
