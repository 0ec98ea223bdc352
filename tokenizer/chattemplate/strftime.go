package chattemplate

import (
	"fmt"
	"strings"
	"time"
)

// templateStrftime formats t like Python's datetime.strftime under the C locale (on
// glibc), which is what the strftime_now global of transformers' chat
// templates calls. Supported: %a %A %b %B %c %C %d %D %e %F %g %G %h %H %I
// %j %k %l %m %M %n %p %r %R %s %S %t %T %u %U %V %w %W %x %X %y %Y %z %Z %%
// and the glibc flag "-" (no padding, as in "%-d"). An unknown directive is
// kept as written, as glibc does.
func templateStrftime(t time.Time, format string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 >= len(format) {
			b.WriteByte(c)
			continue
		}
		noPad := false
		j := i + 1
		if format[j] == '-' && j+1 < len(format) {
			noPad = true
			j++
		}
		text, ok := strftimeDirective(t, format[j], noPad)
		if !ok {
			b.WriteString(format[i : j+1])
		} else {
			b.WriteString(text)
		}
		i = j
	}
	return b.String()
}

// strftimeDirective expands one directive letter; ok is false when unknown.
func strftimeDirective(t time.Time, d byte, noPad bool) (string, bool) {
	num := func(v, width int, pad byte) string {
		if noPad {
			return fmt.Sprint(v)
		}
		s := fmt.Sprint(v)
		for len(s) < width {
			s = string(pad) + s
		}
		return s
	}
	hour12 := t.Hour() % 12
	if hour12 == 0 {
		hour12 = 12
	}
	isoYear, isoWeek := t.ISOWeek()
	switch d {
	case 'a':
		return t.Weekday().String()[:3], true
	case 'A':
		return t.Weekday().String(), true
	case 'b', 'h':
		return t.Month().String()[:3], true
	case 'B':
		return t.Month().String(), true
	case 'c':
		return fmt.Sprintf("%s %s %2d %02d:%02d:%02d %d", t.Weekday().String()[:3], t.Month().String()[:3],
			t.Day(), t.Hour(), t.Minute(), t.Second(), t.Year()), true
	case 'C':
		return num(t.Year()/100, 2, '0'), true
	case 'd':
		return num(t.Day(), 2, '0'), true
	case 'D':
		return fmt.Sprintf("%02d/%02d/%02d", int(t.Month()), t.Day(), t.Year()%100), true
	case 'e':
		return num(t.Day(), 2, ' '), true
	case 'F':
		return fmt.Sprintf("%d-%02d-%02d", t.Year(), int(t.Month()), t.Day()), true
	case 'g':
		return num(isoYear%100, 2, '0'), true
	case 'G':
		return fmt.Sprint(isoYear), true
	case 'H':
		return num(t.Hour(), 2, '0'), true
	case 'I':
		return num(hour12, 2, '0'), true
	case 'j':
		return num(t.YearDay(), 3, '0'), true
	case 'k':
		return num(t.Hour(), 2, ' '), true
	case 'l':
		return num(hour12, 2, ' '), true
	case 'm':
		return num(int(t.Month()), 2, '0'), true
	case 'M':
		return num(t.Minute(), 2, '0'), true
	case 'n':
		return "\n", true
	case 'p':
		if t.Hour() < 12 {
			return "AM", true
		}
		return "PM", true
	case 'r':
		return fmt.Sprintf("%02d:%02d:%02d %s", hour12, t.Minute(), t.Second(), map[bool]string{true: "AM", false: "PM"}[t.Hour() < 12]), true
	case 'R':
		return fmt.Sprintf("%02d:%02d", t.Hour(), t.Minute()), true
	case 's':
		return fmt.Sprint(t.Unix()), true
	case 'S':
		return num(t.Second(), 2, '0'), true
	case 't':
		return "\t", true
	case 'T', 'X':
		return fmt.Sprintf("%02d:%02d:%02d", t.Hour(), t.Minute(), t.Second()), true
	case 'u':
		wd := int(t.Weekday())
		if wd == 0 {
			wd = 7
		}
		return fmt.Sprint(wd), true
	case 'U':
		return num((t.YearDay()+6-int(t.Weekday()))/7, 2, '0'), true
	case 'V':
		return num(isoWeek, 2, '0'), true
	case 'w':
		return fmt.Sprint(int(t.Weekday())), true
	case 'W':
		return num((t.YearDay()+6-(int(t.Weekday())+6)%7)/7, 2, '0'), true
	case 'x':
		return fmt.Sprintf("%02d/%02d/%02d", int(t.Month()), t.Day(), t.Year()%100), true
	case 'y':
		return num(t.Year()%100, 2, '0'), true
	case 'Y':
		return fmt.Sprint(t.Year()), true
	case 'z', 'Z':
		// Python's datetime.now() is naive: %z and %Z expand to nothing.
		return "", true
	case '%':
		return "%", true
	}
	return "", false
}
