package policytest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
)

// Objects are the policies and objects one test runs with.
type Objects struct {
	Validations []*admissionv1alpha1.ValidationPolicy
	Mutations   []*admissionv1alpha1.MutationPolicy
	Exceptions  []*admissionv1alpha1.PolicyException
	Access      []*authzv1alpha1.AccessPolicy
	Static      []*authnv1alpha1.StaticToken
	JWT         []*authnv1alpha1.JWTAuthenticator
	Namespaces  map[string]*corev1.Namespace
	Secrets     map[string]*corev1.Secret
	// Params are the other objects: the parameters policies name by
	// paramKind and paramRef (ConfigMaps, custom resources).
	Params []*unstructured.Unstructured
	// APIAudiences are the API server's own audiences (Test.apiAudiences).
	APIAudiences []string
}

// document is one YAML document of a file, and where it is.
type document struct {
	file  string
	index int // 1-based, in its file
	tm    metav1.TypeMeta
	raw   []byte // as JSON
}

func (d document) String() string {
	return fmt.Sprintf("%s (document %d, %s)", d.file, d.index, d.tm.Kind)
}

// Suite is one Test document and what it runs with.
type Suite struct {
	File    string
	Test    Test
	Objects *Objects
}

// Load finds every Test document in the YAML files under root (a file or
// a directory, searched below) and loads the policies each names. Any
// document that cannot be read, or has a field its kind does not have, is
// an error naming its file: nothing is skipped silently.
func Load(root string) ([]Suite, error) {
	files, err := yamlFiles(root, true)
	if err != nil {
		return nil, err
	}
	l := &loader{docs: map[string][]document{}}
	var suites []Suite
	for _, f := range files {
		docs, err := l.read(f)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			if g, _, _ := strings.Cut(d.tm.APIVersion, "/"); g == testGroup && (d.tm.Kind != Kind || d.tm.APIVersion != APIVersion) {
				return nil, fmt.Errorf("%s: apiVersion %q kind %q: a test is apiVersion %s kind %s", d, d.tm.APIVersion, d.tm.Kind, APIVersion, Kind)
			}
			if d.tm.Kind != Kind || d.tm.APIVersion != APIVersion {
				continue
			}
			var t Test
			if err := strict(d.raw, &t); err != nil {
				return nil, fmt.Errorf("%s: %w", d, err)
			}
			if err := validateTest(&t); err != nil {
				return nil, fmt.Errorf("%s: %w", d, err)
			}
			objs, err := l.objects(filepath.Dir(f), t.Policies)
			if err != nil {
				return nil, fmt.Errorf("%s: policies: %w", d, err)
			}
			objs.APIAudiences = t.APIAudiences
			suites = append(suites, Suite{File: f, Test: t, Objects: objs})
		}
	}
	if len(suites) == 0 {
		return nil, fmt.Errorf("%s: no %s documents of apiVersion %s", root, Kind, APIVersion)
	}
	return suites, nil
}

// strict decodes JSON into v as the API server decodes with
// fieldValidation=Strict: a field v does not have is an error naming its
// path, and so is a field given twice.
func strict(data []byte, v any) error {
	strictErrs, err := sigsjson.UnmarshalStrict(data, v)
	if err != nil {
		return err
	}
	if len(strictErrs) > 0 {
		msgs := make([]string, len(strictErrs))
		for i, e := range strictErrs {
			msgs[i] = e.Error()
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}

func validateTest(t *Test) error {
	if t.Metadata.Name == "" {
		return errors.New("metadata.name is empty")
	}
	if len(t.Cases) == 0 {
		return errors.New("cases: a test needs at least one case")
	}
	seen := map[string]bool{}
	for i, c := range t.Cases {
		path := fmt.Sprintf("cases[%d]", i)
		if c.Name == "" {
			return fmt.Errorf("%s.name is empty", path)
		}
		if seen[c.Name] {
			return fmt.Errorf("%s.name: %q is the name of another case", path, c.Name)
		}
		seen[c.Name] = true
		n := 0
		for _, set := range []bool{c.Authentication != nil, c.Authorization != nil, c.Admission != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%s: set exactly one of authentication, authorization and admission", path)
		}
		if err := validateExpect(c); err != nil {
			return fmt.Errorf("%s.expect: %w", path, err)
		}
	}
	return nil
}

// testGroup is the API group of test documents.
const testGroup = "cli.portcullis.io"

// validateExpect checks that a case expects something of its own phase,
// and nothing of another: an expectation that is never checked would pass
// whatever the answer.
func validateExpect(c Case) error {
	x := c.Expect
	authn := map[string]bool{"authenticated": x.Authenticated != nil, "user": x.User != nil}
	authz := map[string]bool{"decision": x.Decision != "", "reasonContains": x.ReasonContains != "", "errorContains": x.ErrorContains != ""}
	adm := map[string]bool{"allowed": x.Allowed != nil, "messageContains": x.MessageContains != "", "warnings": x.Warnings != nil,
		"object": x.Object != nil, "errorContains": x.ErrorContains != ""}
	own, phase := adm, "admission"
	switch {
	case c.Authentication != nil:
		own, phase = authn, "authentication"
	case c.Authorization != nil:
		own, phase = authz, "authorization"
		switch x.Decision {
		case "", "Allow", "Deny", "NoOpinion":
		default:
			return fmt.Errorf("decision %q is not Allow, Deny or NoOpinion", x.Decision)
		}
	}
	some := false
	for _, fields := range []map[string]bool{authn, authz, adm} {
		for f, set := range fields {
			if !set {
				continue
			}
			if !own[f] {
				return fmt.Errorf("%s is not an expectation of %s", f, phase)
			}
			some = true
		}
	}
	if !some {
		return fmt.Errorf("expect nothing of %s: every case checks something", phase)
	}
	return nil
}

type loader struct {
	docs map[string][]document
}

// yamlFiles lists the .yaml and .yml files of path, below it when deep.
func yamlFiles(path string, deep bool) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	var out []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != path && !deep {
				return filepath.SkipDir
			}
			return nil
		}
		if base := filepath.Base(p); base == "kustomization.yaml" || base == "kustomization.yml" {
			return nil // kustomize's, not objects
		}
		if ext := filepath.Ext(p); ext == ".yaml" || ext == ".yml" {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// read splits a file into its documents, once.
func (l *loader) read(file string) ([]document, error) {
	if d, ok := l.docs[file]; ok {
		return d, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs []document
	for i := 1; ; i++ {
		b, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if len(bytes.TrimSpace(b)) == 0 || isComment(b) {
			continue
		}
		j, err := yaml.YAMLToJSON(b)
		if err != nil {
			return nil, fmt.Errorf("%s (document %d): %w", file, i, err)
		}
		if string(j) == "null" {
			continue
		}
		d := document{file: file, index: i, raw: j}
		if err := yaml.Unmarshal(j, &d.tm); err != nil {
			return nil, fmt.Errorf("%s (document %d): %w", file, i, err)
		}
		docs = append(docs, d)
	}
	l.docs[file] = docs
	return docs, nil
}

func isComment(b []byte) bool {
	for _, line := range strings.Split(string(b), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// objects loads the policies and objects of paths, relative to dir.
func (l *loader) objects(dir string, paths []string) (*Objects, error) {
	if len(paths) == 0 {
		paths = []string{"."}
	}
	o := &Objects{Namespaces: map[string]*corev1.Namespace{}, Secrets: map[string]*corev1.Secret{}}
	names := map[string]string{} // kind/name → where
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		files, err := yamlFiles(p, false)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			docs, err := l.read(f)
			if err != nil {
				return nil, err
			}
			for _, d := range docs {
				name, err := o.add(d)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", d, err)
				}
				if name == "" {
					continue
				}
				key := d.tm.Kind + "/" + name
				if where, dup := names[key]; dup {
					return nil, fmt.Errorf("%s: %s is also defined in %s", d, key, where)
				}
				names[key] = d.String()
			}
		}
	}
	return o, nil
}

// add decodes one document into o, strictly: a field its kind does not
// have is an error. It returns the object's name, "" for documents that
// are not objects of a test (tests, kustomizations).
func (o *Objects) add(d document) (string, error) {
	gv, kind := d.tm.APIVersion, d.tm.Kind
	decode := func(v named) (string, error) { return decodeNamed(d, v) }
	switch {
	case gv == APIVersion && kind == Kind:
		return "", nil
	case strings.HasPrefix(gv, "kustomize.config.k8s.io/"):
		return "", nil
	case gv == admissionv1alpha1.GroupVersion.String() && kind == "ValidationPolicy":
		return decodeInto(d, &o.Validations)
	case gv == admissionv1alpha1.GroupVersion.String() && kind == "MutationPolicy":
		return decodeInto(d, &o.Mutations)
	case gv == admissionv1alpha1.GroupVersion.String() && kind == "PolicyException":
		return decodeInto(d, &o.Exceptions)
	case gv == authzv1alpha1.GroupVersion.String() && kind == "AccessPolicy":
		return decodeInto(d, &o.Access)
	case gv == authnv1alpha1.GroupVersion.String() && kind == "StaticToken":
		return decodeInto(d, &o.Static)
	case gv == authnv1alpha1.GroupVersion.String() && kind == "JWTAuthenticator":
		return decodeInto(d, &o.JWT)
	case gv == "v1" && kind == "Namespace":
		ns := &corev1.Namespace{}
		name, err := decode(ns)
		o.Namespaces[name] = ns
		return name, err
	case gv == "v1" && kind == "Secret":
		s := &corev1.Secret{}
		name, err := decode(s)
		for k, v := range s.StringData {
			if s.Data == nil {
				s.Data = map[string][]byte{}
			}
			s.Data[k] = []byte(v)
		}
		o.Secrets[name] = s
		return name, err
	}
	if g, _, _ := strings.Cut(gv, "/"); strings.HasSuffix(g, ".portcullis.io") || gv == "" || kind == "" {
		return "", fmt.Errorf("apiVersion %q kind %q is not a kind portcullis test reads: ValidationPolicy, MutationPolicy, PolicyException, AccessPolicy, StaticToken, JWTAuthenticator, %s %s, and objects (Namespaces, Secrets, parameters)", gv, kind, APIVersion, Kind)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(d.raw); err != nil {
		return "", err
	}
	if u.GetName() == "" {
		return "", errors.New("metadata.name is empty")
	}
	o.Params = append(o.Params, u)
	return u.GetNamespace() + "/" + u.GetName() + " " + gv, nil
}

type named interface{ GetName() string }

// decodeNamed decodes d strictly into v, which must have a name.
func decodeNamed(d document, v named) (string, error) {
	if err := strict(d.raw, v); err != nil {
		return "", err
	}
	if v.GetName() == "" {
		return "", errors.New("metadata.name is empty")
	}
	return v.GetName(), nil
}

// decodeInto decodes d into a new object appended to list.
func decodeInto[T any, P interface {
	*T
	named
}](d document, list *[]P) (string, error) {
	p := P(new(T))
	*list = append(*list, p)
	return decodeNamed(d, p)
}
