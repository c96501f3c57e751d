package policytest

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// Formats of a report.
const (
	FormatText  = "text"
	FormatJSON  = "json"
	FormatJUnit = "junit"
)

// Failed counts the results that did not pass.
func Failed(results []Result) int {
	n := 0
	for _, r := range results {
		if !r.Passed {
			n++
		}
	}
	return n
}

// Write reports results in format.
func Write(w io.Writer, format string, results []Result) error {
	switch format {
	case FormatText, "":
		return writeText(w, results)
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Passed  int      `json:"passed"`
			Failed  int      `json:"failed"`
			Results []Result `json:"results"`
		}{len(results) - Failed(results), Failed(results), results})
	case FormatJUnit:
		return writeJUnit(w, results)
	}
	return fmt.Errorf("output format %q: use text, json or junit", format)
}

func writeText(w io.Writer, results []Result) error {
	suite := ""
	for _, r := range results {
		if r.Suite != suite {
			suite = r.Suite
			fmt.Fprintf(w, "%s (%s)\n", r.Suite, r.File)
		}
		status := "PASS"
		if !r.Passed {
			status = "FAIL"
		}
		fmt.Fprintf(w, "  %s  %-13s %s\n", status, r.Phase, r.Case)
		if !r.Passed {
			fmt.Fprintf(w, "        got: %s\n", r.Got)
			for _, f := range r.Failures {
				fmt.Fprintf(w, "        %s\n", strings.ReplaceAll(f, "\n", "\n        "))
			}
		}
	}
	_, err := fmt.Fprintf(w, "%d passed, %d failed\n", len(results)-Failed(results), Failed(results))
	return err
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

// writeJUnit writes the JUnit XML that CI systems read: a testsuite per
// Test, a testcase per case, classname the phase.
func writeJUnit(w io.Writer, results []Result) error {
	out := junitSuites{Tests: len(results), Failures: Failed(results)}
	for _, r := range results {
		if n := len(out.Suites); n == 0 || out.Suites[n-1].Name != r.Suite {
			out.Suites = append(out.Suites, junitSuite{Name: r.Suite})
		}
		s := &out.Suites[len(out.Suites)-1]
		s.Tests++
		c := junitCase{Name: r.Case, Classname: r.Suite + "." + r.Phase, SystemOut: r.Got}
		if !r.Passed {
			s.Failures++
			c.Failure = &junitFailure{Message: r.Failures[0], Type: "expectation", Body: strings.Join(r.Failures, "\n")}
		}
		s.Cases = append(s.Cases, c)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
