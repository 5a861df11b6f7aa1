package mapping_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/testenv"
)

// phpParseForm is what a PHP receiver does with a form body ($_POST is
// parse_str of the body), printed as JSON with key order kept.
const phpParseForm = `parse_str(file_get_contents("php://stdin"), $a);
echo json_encode($a, JSON_FORCE_OBJECT|JSON_UNESCAPED_UNICODE|JSON_UNESCAPED_SLASHES);`

// phpBuildQuery is what Faveo does with a payload array.
const phpBuildQuery = `echo http_build_query(json_decode(file_get_contents("php://stdin"), true));`

// TestFormParsedByPHP: our form body is byte for byte what PHP's
// http_build_query makes of the same tree, and PHP parses each faveo-form body into the same tree
// as the json body, minus what a form cannot carry (nulls, empty objects).
func TestFormParsedByPHP(t *testing.T) {
	payloads := map[string][]byte{
		"edge cases": []byte(`{"event":"x","ticket":{"title":"a b&c=d+e%f;g?h#i~j*k'l(m)n!o,p:q@r$s",` +
			`"body":"<p>é 日本 😀</p>\n\"q\" \\ \/ \t","n":null,"e":{},"nested":{"only":null},` +
			`"list":["a",null,"c"],"b":true,"f":false,"10":"numeric key","zero":"0","empty":"",` +
			`"with space":{"dotted.key":"v"}}}`),
	}
	for _, ev := range mapping.FaveoEvents {
		payloads[ev] = readDocs(t, ev)
	}
	// Keys a form cannot carry back (brackets, an empty key: parse_str
	// reads them as nesting or drops them) are compared as bytes only.
	buildOnly := map[string][]byte{
		"brackets and odd keys": []byte(`{"event":"x","a[b]":"c]d[e","":"empty key","n":{"":"nested empty key",` +
			`"0":"zero","-1":"negative","01":"leading zero","x y[z]":{"k=v&w":"1+1=2 [ok]"}},` +
			`"cr":"a\r\nb","pct":"100%","uni":{"日本":"ü"},"sp":" ","zero":"0","f":"1.50","big":"12345678901234567890"}`),
	}
	for name, payload := range buildOnly {
		payloads[name] = payload
	}
	for name, payload := range payloads {
		t.Run(name, func(t *testing.T) {
			form, _, err := mapping.Render(mapping.FormatForm, payload)
			if err != nil {
				t.Fatal(err)
			}
			jsonBody, _, err := mapping.Render(mapping.FormatJSON, payload)
			if err != nil {
				t.Fatal(err)
			}
			if built := string(testenv.RunPHP(t, phpBuildQuery, jsonBody)); built != string(form) {
				t.Errorf("PHP's http_build_query gives\n%s\nwe give\n%s", built, form)
			}
			if _, ok := buildOnly[name]; ok {
				return
			}
			fromPHP := parseTree(t, testenv.RunPHP(t, phpParseForm, form)).String()
			want := parseTree(t, jsonBody).formView().String()
			if fromPHP != want {
				t.Errorf("PHP parsed the form into\n%s\nwant\n%s\nform: %s", fromPHP, want, form)
			}
		})
	}
}

// TestGoldenFormsMatchPHP: every golden faveo-form body (real mapped
// events, from PostgreSQL and from MySQL) is byte for byte what PHP's
// http_build_query makes of the golden JSON payload beside it. One PHP
// process checks them all.
func TestGoldenFormsMatchPHP(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "golden*", "*", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden payloads (%v)", err)
	}
	var in bytes.Buffer
	var forms []string
	for _, f := range files {
		payload, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		form, err := os.ReadFile(strings.TrimSuffix(f, ".json") + ".form")
		if err != nil {
			t.Fatal(err)
		}
		in.Write(bytes.TrimSpace(payload))
		in.WriteByte('\n')
		forms = append(forms, string(bytes.TrimSpace(form)))
	}
	out := testenv.RunPHP(t, `while (($l = fgets(STDIN)) !== false) { echo http_build_query(json_decode($l, true)), "\n"; }`, in.Bytes())
	built := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(built) != len(files) {
		t.Fatalf("PHP built %d bodies for %d payloads", len(built), len(files))
	}
	for i, f := range files {
		if built[i] != forms[i] {
			t.Errorf("%s: PHP's http_build_query gives\n%s\nthe golden form is\n%s", f, built[i], forms[i])
		}
	}
}

// TestGoldenFormsParsedByPHP: what a PHP receiver's $_POST holds for every
// golden faveo-form body (PostgreSQL's and MySQL's) is the tree of the JSON
// payload beside it, minus what a form cannot carry (nulls, empty
// objects). One PHP process parses them all.
func TestGoldenFormsParsedByPHP(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "golden*", "*", "*.form"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden forms (%v)", err)
	}
	var in bytes.Buffer
	for _, f := range files {
		form, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		in.Write(bytes.TrimSpace(form))
		in.WriteByte('\n')
	}
	out := testenv.RunPHP(t, `while (($l = fgets(STDIN)) !== false) { parse_str(trim($l), $a);
echo json_encode($a, JSON_FORCE_OBJECT|JSON_UNESCAPED_UNICODE|JSON_UNESCAPED_SLASHES), "\n"; }`, in.Bytes())
	parsed := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(parsed) != len(files) {
		t.Fatalf("PHP parsed %d bodies of %d", len(parsed), len(files))
	}
	for i, f := range files {
		payload, err := os.ReadFile(strings.TrimSuffix(f, ".form") + ".json")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := parseTree(t, []byte(parsed[i])).String(), parseTree(t, payload).formView().String(); got != want {
			t.Errorf("%s: $_POST is\n%s\nwant\n%s", f, got, want)
		}
	}
}
