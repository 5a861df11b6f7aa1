package mapping_test

import (
	"testing"

	"github.com/deskhook/deskhook/mapping"
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
			if built := string(runPHP(t, phpBuildQuery, jsonBody)); built != string(form) {
				t.Errorf("PHP's http_build_query gives\n%s\nwe give\n%s", built, form)
			}
			fromPHP := parseTree(t, runPHP(t, phpParseForm, form)).String()
			want := parseTree(t, jsonBody).formView().String()
			if fromPHP != want {
				t.Errorf("PHP parsed the form into\n%s\nwant\n%s\nform: %s", fromPHP, want, form)
			}
		})
	}
}
