package runstore

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Ref is where a record's line is in a JSONL log: its byte offset and length (newline included).
type Ref struct{ Offset, Length int64 }

// End is the offset just past the line.
func (r Ref) End() int64 { return r.Offset + r.Length }

// ScanRecords reads the JSONL file at path line by line without holding it in memory, decoding
// each line into a T and calling fn with it, its line number (from 1) and its Ref. Blank lines
// are skipped. It returns the byte length of the complete lines: a last line without its newline
// is a line torn by a crash while appending; it is skipped, and Store.OpenLog with that length
// cuts it off. A missing file has no lines. A line that is not valid JSON is an error naming the
// file and the line; an error from fn stops the scan and is returned as it is.
func ScanRecords[T any](path string, fn func(rec T, line int, ref Ref) error) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("runstore: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	var good int64
	for lineNo := 1; ; lineNo++ {
		raw, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return good, nil // nothing left, or a torn last line
		}
		if err != nil {
			return 0, fmt.Errorf("runstore: %s: line %d: %w", path, lineNo, err)
		}
		ref := Ref{good, int64(len(raw))}
		good += ref.Length
		line := bytes.TrimSpace(raw)
		if len(line) == 0 {
			continue
		}
		var rec T
		if err := json.Unmarshal(line, &rec); err != nil {
			return 0, fmt.Errorf("runstore: %s: line %d: malformed JSON: %w", path, lineNo, err)
		}
		if err := fn(rec, lineNo, ref); err != nil {
			return 0, err
		}
	}
}

// ReadRecord decodes the record on the line at ref (as ScanRecords or Log.Append reported it).
func ReadRecord[T any](path string, ref Ref) (T, error) {
	var rec T
	f, err := os.Open(path)
	if err != nil {
		return rec, fmt.Errorf("runstore: %w", err)
	}
	defer f.Close()
	buf := make([]byte, ref.Length)
	if _, err := f.ReadAt(buf, ref.Offset); err != nil {
		return rec, fmt.Errorf("runstore: %s: offset %d: %w", path, ref.Offset, err)
	}
	if err := json.Unmarshal(bytes.TrimSpace(buf), &rec); err != nil {
		return rec, fmt.Errorf("runstore: %s: offset %d: %w", path, ref.Offset, err)
	}
	return rec, nil
}

// File is what a Log writes to: its *os.File, or what Log.Wrap put around it.
type File interface {
	io.Writer
	Sync() error
	Name() string
}

// Log is an append-only JSONL file of a Store, open for appending.
type Log struct {
	path string
	f    *os.File
	w    File
	end  int64 // bytes in the file: where the next line goes
	err  error // the first failed append; the file's end is unknown after it
}

// OpenLog opens the JSONL file name (relative to the run directory) for appending, creating it
// when missing, after cutting off everything past end: the length of the lines to keep (all the
// complete lines, as ScanRecords returns it, or fewer). The store closes the log on Close.
func (s *Store) OpenLog(name string, end int64) (*Log, error) {
	path := filepath.Join(s.dir, filepath.FromSlash(name))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("runstore: %w", err)
	}
	st, err := f.Stat()
	if err == nil && st.Size() < end {
		err = fmt.Errorf("holds %d bytes, fewer than the %d to keep", st.Size(), end)
	}
	if err == nil && st.Size() != end {
		if err = f.Truncate(end); err == nil {
			err = f.Sync()
		}
	}
	if err == nil {
		_, err = f.Seek(end, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("runstore: log %s: %w", path, err)
	}
	l := &Log{path: path, f: f, w: f, end: end}
	s.mu.Lock()
	s.logs = append(s.logs, l)
	s.mu.Unlock()
	return l, nil
}

// Path is the log's file.
func (l *Log) Path() string { return l.path }

// Wrap makes the log write through wrap(file) from now on: a test injects write failures (a
// full disk) this way.
func (l *Log) Wrap(wrap func(*os.File) File) { l.w = wrap(l.f) }

// Append writes the records as JSON lines (HTML characters not escaped) in one write and fsyncs
// the file; it returns where each line landed. After a failed append the log refuses further
// appends (the file may end in some of the lines, whole or torn): scan the file again and
// reopen it.
func (l *Log) Append(records ...any) ([]Ref, error) {
	if l.err != nil {
		return nil, fmt.Errorf("runstore: log %s: an earlier append failed: %w", l.path, l.err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	refs := make([]Ref, len(records))
	for i, r := range records {
		at := buf.Len()
		if err := enc.Encode(r); err != nil {
			return nil, fmt.Errorf("runstore: log %s: record %d: %w", l.path, i, err)
		}
		refs[i] = Ref{l.end + int64(at), int64(buf.Len() - at)}
	}
	if _, err := l.w.Write(buf.Bytes()); err != nil {
		l.err = err
		return nil, fmt.Errorf("runstore: append %s: %w", l.w.Name(), err)
	}
	if err := l.w.Sync(); err != nil {
		l.err = err
		return nil, fmt.Errorf("runstore: sync %s: %w", l.w.Name(), err)
	}
	l.end += int64(buf.Len())
	return refs, nil
}

// Close closes the log's file; closing it again does nothing.
func (l *Log) Close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("runstore: log %s: %w", l.path, err)
	}
	return nil
}
