package chattemplate

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"tether/tokenizer"
)

// countdown is the text jinja2 renders for f(n) of limitsCountdown: the
// numbers 0..n, each followed by a comma (checked against jinja2 3.1.6 for
// n = 5: "0,1,2,3,4,5,").
func countdown(n int) string {
	var b strings.Builder
	for i := 0; i <= n; i++ {
		fmt.Fprintf(&b, "%d,", i)
	}
	return b.String()
}

// limitsCountdown recurses n+1 macro calls deep for f(n).
const limitsCountdown = "{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{% endif %}{{ n }},{% endmacro %}{{ f(N) }}"

// TestTemplateRecursionWithinLimit: recursion with a base case is legal
// Jinja. Under Python's default recursion limit jinja2 3.1.6 renders f(198)
// (199 nested calls) and raises RecursionError for f(199); here every
// depth jinja2 renders must give jinja2's text, and a far deeper one must
// fail with an error.
func TestTemplateRecursionWithinLimit(t *testing.T) {
	tmpl, err := New(limitsCountdown, "countdown")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 50, 198} {
		got, err := tmpl.Render(nil, Options{Extra: map[string]any{"N": n}})
		if err != nil {
			t.Fatalf("f(%d): %v", n, err)
		}
		if want := countdown(n); got != want {
			t.Errorf("f(%d) = %.40q..., want %.40q...", n, got, want)
		}
	}
	_, err = tmpl.Render(nil, Options{Extra: map[string]any{"N": 400}})
	if err == nil || !strings.Contains(err.Error(), "recursion too deep") {
		t.Errorf("f(400): got error %v, want a recursion-depth error", err)
	}
}

// TestTemplateRecursiveLoopWithinLimit renders a chain of nested dicts with
// a recursive for loop: loop() recursion within the limit gives the
// numbers in order, as jinja2 does.
func TestTemplateRecursiveLoopWithinLimit(t *testing.T) {
	const src = "{% for x in [d] recursive %}{{ x.n }};{% if x.c %}{{ loop(x.c) }}{% endif %}{% endfor %}"
	tmpl, err := New(src, "tree")
	if err != nil {
		t.Fatal(err)
	}
	const depth = 150
	root := map[string]any{"n": 0, "c": []any{}}
	cur := root
	var want strings.Builder
	want.WriteString("0;")
	for i := 1; i < depth; i++ {
		next := map[string]any{"n": i, "c": []any{}}
		cur["c"] = []any{next}
		cur = next
		fmt.Fprintf(&want, "%d;", i)
	}
	got, err := tmpl.Render(nil, Options{Extra: map[string]any{"d": root}})
	if err != nil {
		t.Fatal(err)
	}
	if got != want.String() {
		t.Errorf("got %.60q..., want %.60q...", got, want.String())
	}
}

// TestTemplateRunawayFailsCleanly: templates that recurse forever or loop
// too long must return an error naming the template's file and the line,
// quickly, instead of crashing the process with a Go stack overflow or
// running for hours.
func TestTemplateRunawayFailsCleanly(t *testing.T) {
	const file = "/models/bad/tokenizer_config.json"
	for _, tc := range []struct {
		name, src string
		extra     map[string]any
		want      []string
	}{
		{
			name: "self-recursive macro",
			src:  "{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}",
			want: []string{"line 1:", "recursion too deep", `macro "f"`},
		},
		{
			// The rewrite (hoisted conditional, subscripts) keeps lines.
			name: "recursion after lines the rewrite changes",
			src:  "{{ 'a' + (b if c else d) }}{% set x = messages[-1].content.split()[0] %}\n{% for m in messages[::-1] %}{{ m }}{% endfor %}\n{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}",
			want: []string{"line 3:", "recursion too deep"},
		},
		{
			name: "mutual recursion",
			src:  "hello\n{% macro f(x) %}{{ g(x) }}{% endmacro %}\n{% macro g(x) %}\n{{ f(x) }}{% endmacro %}\n{{ f(1) }}",
			want: []string{"recursion too deep", "line "},
		},
		{
			name: "recursive loop over a list that never ends",
			src:  "{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}",
			want: []string{"line 1:", "recursion too deep", "loop()"},
		},
		{
			name: "template including itself",
			src:  "x\n{% include 'chat_template' %}",
			want: []string{"line 2:", "recursion too deep", "include"},
		},
		{
			name: "block rendering itself",
			src:  "{% block b %}{{ self.b() }}{% endblock %}",
			want: []string{"recursion too deep", `block "b"`},
		},
		{
			name: "huge range",
			src:  "{% for i in range(1000000000) %}{% endfor %}",
			want: []string{"line 1", "range too big"},
		},
		{
			name: "nested loops of allowed ranges",
			src:  "\n\n{% for i in range(100000) %}{% for j in range(100000) if j < 0 %}{% endfor %}{% endfor %}",
			want: []string{"line 3:", "too much work"},
		},
		{
			name:  "output that grows without end",
			src:   "{% for i in range(100000) %}{% for j in range(100000) %}{{ s }}{% endfor %}{% endfor %}",
			extra: map[string]any{"s": strings.Repeat("x", 4096)},
			want:  []string{"output passed"},
		},
		{
			name: "template overriding the budget variable",
			src:  "{% set " + budgetVar + " = 1 %}{% if true %}x{% endif %}",
			want: []string{"reserved"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := NewFile(tc.src, "default", file)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = tmpl.Render([]tokenizer.Message{{Role: "user", Content: "hi"}}, Options{Extra: tc.extra})
			if err == nil {
				t.Fatal("rendered without error")
			}
			if elapsed := time.Since(start); elapsed > 20*time.Second {
				t.Errorf("took %v to fail", elapsed)
			}
			msg := err.Error()
			t.Log(msg)
			for _, w := range append([]string{`chat template "default" in ` + file}, tc.want...) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, internalPanicText) {
				t.Errorf("error %q comes from a panic", msg)
			}
		})
	}
}

// TestBoundedRange checks range() against Python's range for the cases
// templates use, and its refusal past jinja2's sandbox limit.
func TestBoundedRange(t *testing.T) {
	tmpl, err := New("{% for i in range(a, b, c) %}{{ i }},{% endfor %}|{{ range(n)|length }}", "range")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		a, b, c, n int
		want       string
	}{
		// Python: "".join(f"{i}," for i in range(a, b, c)) + "|" + str(len(range(n)))
		{0, 5, 1, 3, "0,1,2,3,4,|3"},
		{5, 0, -2, 0, "5,3,1,|0"},
		{0, 10, 3, 100000, "0,3,6,9,|100000"},
		{3, 3, 1, -4, "|0"},
		{-9223372036854775807, -9223372036854775806, 5, 1, "-9223372036854775807,|1"},
	} {
		got, err := tmpl.Render(nil, Options{Extra: map[string]any{"a": tc.a, "b": tc.b, "c": tc.c, "n": tc.n}})
		if err != nil {
			t.Errorf("range(%d, %d, %d): %v", tc.a, tc.b, tc.c, err)
			continue
		}
		if got != tc.want {
			t.Errorf("range(%d, %d, %d), range(%d): got %q, want %q", tc.a, tc.b, tc.c, tc.n, got, tc.want)
		}
	}
	for _, args := range [][3]int{{0, 100001, 1}, {-9223372036854775807, 9223372036854775807, 1}, {0, 1, 0}} {
		_, err := tmpl.Render(nil, Options{Extra: map[string]any{"a": args[0], "b": args[1], "c": args[2], "n": 1}})
		if err == nil {
			t.Errorf("range%v: no error", args)
		}
	}
}

// TestLoopErrorsWithoutCountingFilter: an error in a for loop's iterable
// reads as gonja writes it, without the item-counting filter the limits
// wrap around the iterable.
func TestLoopErrorsWithoutCountingFilter(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"{% for m in messages|nosuch %}{% endfor %}", "filter 'nosuch' not found"},
		{"{% for m in range('a') %}{% endfor %}", "range: expected signature"},
		{"{% for m in x['it''s'].y %}{% endfor %}", "line 1"},
		{"{% for m in range(200000) %}{% endfor %}", "range too big"},
	} {
		tmpl, err := New(tc.src, "loop")
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		_, err = tmpl.Render(nil, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), countItemsFilter) {
			t.Errorf("%s: error %v, want one with %q and without %s", tc.src, err, tc.want, countItemsFilter)
		}
	}
}
