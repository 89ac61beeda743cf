package load

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Scenario is a weighted mix of requests. It is written in YAML or JSON
// (JSON is read by the same strict decoder):
//
//	name: catalog-zipf
//	headers:                      # sent with every request
//	  X-Request-ID: "{uuid}"
//	requests:
//	  - weight: 70
//	    path: /products/{id}
//	    params:
//	      id: {dist: zipf, exponent: 1.0, min: 1, max: 100000}
//	  - weight: 30
//	    method: POST
//	    path: /orders
//	    headers: {Content-Type: application/json}
//	    body: '{"user": {user}}'
//
// Paths, header values and bodies may hold placeholders: {name} for a
// parameter of the request, {uuid} for a random version-4 UUID and {seq} for
// a number unique within the run. Braces around anything that is not a plain
// identifier (as in JSON bodies) are literal.
type Scenario struct {
	Name     string            `yaml:"name" json:"name"`
	Headers  map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	Requests []RequestSpec     `yaml:"requests" json:"requests"`
}

// RequestSpec is one entry of a scenario's mix.
type RequestSpec struct {
	Name    string            `yaml:"name,omitempty" json:"name,omitempty"`
	Weight  float64           `yaml:"weight" json:"weight"`
	Method  string            `yaml:"method,omitempty" json:"method,omitempty"` // GET when empty
	Path    string            `yaml:"path" json:"path"`                         // appended to the target URL's path
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	Body    string            `yaml:"body,omitempty" json:"body,omitempty"`
	Params  map[string]Dist   `yaml:"params,omitempty" json:"params,omitempty"`
}

//go:embed scenarios/*.yaml
var builtinScenarios embed.FS

// BuiltinScenarios returns the names of the scenarios shipped with loadgen.
func BuiltinScenarios() []string {
	entries, _ := fs.ReadDir(builtinScenarios, "scenarios")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	return names
}

// LoadScenario reads a scenario from a file, or, when nameOrPath names no
// file and is the name of a shipped scenario (users-uniform, catalog-zipf),
// from the shipped copy.
func LoadScenario(nameOrPath string) (*Scenario, error) {
	data, err := os.ReadFile(nameOrPath)
	if errors.Is(err, fs.ErrNotExist) && !strings.ContainsAny(nameOrPath, `/\.`) {
		data, err = builtinScenarios.ReadFile(path.Join("scenarios", nameOrPath+".yaml"))
		if err != nil {
			return nil, fmt.Errorf("scenario %q: no such file and no shipped scenario of that name (shipped: %s)",
				nameOrPath, strings.Join(BuiltinScenarios(), ", "))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	s, err := ParseScenario(data)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", nameOrPath, err)
	}
	if s.Name == "" {
		s.Name = strings.TrimSuffix(path.Base(nameOrPath), path.Ext(nameOrPath))
	}
	return s, nil
}

// ParseScenario decodes a YAML or JSON scenario strictly (unknown fields are
// errors) and validates it, so that a typo fails before the run, not during.
func ParseScenario(data []byte) (*Scenario, error) {
	var s Scenario
	if err := decodeStrict(data, &s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty scenario")
		}
		return nil, errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// decodeStrict reads JSON with encoding/json and anything else as YAML,
// rejecting unknown fields either way.
func decodeStrict(data []byte, v any) error {
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return err
		}
		if dec.More() {
			return errors.New("trailing data after the JSON object")
		}
		// encoding/json keeps the last of a repeated key; YAML refuses one.
		if key := jsonRepeatedKey(t); key != "" {
			return fmt.Errorf("key %q appears twice in one JSON object", key)
		}
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return err
	}
	// A second document would be ignored silently.
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		return err
	}
	return errors.New("a second YAML document (after ---): give one scenario per file")
}

// jsonRepeatedKey returns the first key that appears twice in one object of
// the JSON document data ("" when none does, or when data does not parse:
// the decoder reports that).
func jsonRepeatedKey(data []byte) string {
	type level struct {
		keys      map[string]bool // nil in an array
		expectKey bool
	}
	var stack []*level
	dec := json.NewDecoder(bytes.NewReader(data))
	valueDone := func() { // a value ended: its object expects a key next
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].expectKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, &level{keys: map[string]bool{}, expectKey: true})
			case '[':
				stack = append(stack, &level{})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
			continue
		case string:
			if n := len(stack); n > 0 && stack[n-1].expectKey {
				if stack[n-1].keys[t] {
					return t
				}
				stack[n-1].keys[t] = true
				stack[n-1].expectKey = false
				continue
			}
		}
		valueDone()
	}
}

// Validate checks weights, methods, paths, distributions and that every
// placeholder names something.
func (s *Scenario) Validate() error {
	if len(s.Requests) == 0 {
		return errors.New("no requests")
	}
	var total float64
	for i, r := range s.Requests {
		where := fmt.Sprintf("request %d", i+1)
		if r.Name != "" {
			where += " (" + r.Name + ")"
		}
		if !(r.Weight >= 0) || math.IsInf(r.Weight, 1) {
			return fmt.Errorf("%s: weight must be a finite number >= 0", where)
		}
		total += r.Weight
		if r.Method != "" && !isToken(r.Method) {
			return fmt.Errorf("%s: bad method %q", where, r.Method)
		}
		if !strings.HasPrefix(r.Path, "/") {
			return fmt.Errorf("%s: path %q must start with /", where, r.Path)
		}
		if strings.ContainsAny(r.Path, " \r\n") {
			return fmt.Errorf("%s: path %q holds a space or line break", where, r.Path)
		}
		for name, d := range r.Params {
			if _, err := newSampler(d); err != nil {
				return fmt.Errorf("%s: param %s: %w", where, name, err)
			}
		}
		if err := checkHeaders(r.Headers); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		for _, text := range templateTexts(s.Headers, r) {
			for _, name := range placeholders(text) {
				if _, ok := r.Params[name]; !ok && name != "uuid" && name != "seq" {
					return fmt.Errorf("%s: placeholder {%s} is not a param of the request (nor uuid or seq)", where, name)
				}
			}
		}
	}
	if !(total > 0) {
		return errors.New("the weights add up to 0")
	}
	if math.IsInf(total, 1) {
		return errors.New("the weights add up to more than a float64 holds: scale them down")
	}
	return checkHeaders(s.Headers)
}

func templateTexts(common map[string]string, r RequestSpec) []string {
	texts := []string{r.Path, r.Body}
	for _, v := range common {
		texts = append(texts, v)
	}
	for _, v := range r.Headers {
		texts = append(texts, v)
	}
	return texts
}

func checkHeaders(h map[string]string) error {
	for k, v := range h {
		if !isToken(k) {
			return fmt.Errorf("bad header name %q", k)
		}
		if strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("header %s: value holds a line break", k)
		}
	}
	return nil
}

// ParseHeader splits a "Name: value" flag.
func ParseHeader(s string) (name, value string, err error) {
	name, value, ok := strings.Cut(s, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !ok || !isToken(name) || strings.ContainsAny(value, "\r\n") {
		return "", "", fmt.Errorf("header %q: want 'Name: value'", s)
	}
	for _, p := range placeholders(value) {
		if p != "uuid" && p != "seq" {
			return "", "", fmt.Errorf("header %q: unknown placeholder {%s} (want {uuid} or {seq})", s, p)
		}
	}
	return name, value, nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// placeholders returns the names of the {name} placeholders in s.
func placeholders(s string) []string {
	var names []string
	for _, p := range splitTemplate(s) {
		if p.name != "" {
			names = append(names, p.name)
		}
	}
	return names
}

// templatePart is a literal or a placeholder name.
type templatePart struct {
	lit  string
	name string
}

// splitTemplate cuts s into literals and {identifier} placeholders.
func splitTemplate(s string) []templatePart {
	var parts []templatePart
	lit := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '{' {
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			break
		}
		name := s[i+1 : i+end]
		if !isIdent(name) {
			continue
		}
		if lit < i {
			parts = append(parts, templatePart{lit: s[lit:i]})
		}
		parts = append(parts, templatePart{name: name})
		i += end
		lit = i + 1
	}
	if lit < len(s) {
		parts = append(parts, templatePart{lit: s[lit:]})
	}
	return parts
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// sortedKeys returns the keys of m in order, for deterministic requests.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
