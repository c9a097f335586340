package bench

import "testing"

func TestCountSyncMessages(t *testing.T) {
	for _, tc := range []struct {
		frame string
		want  int
		bad   bool
	}{
		{`{"id":"s","action":"SYNC","args":{"url":"","messages":[],"time":1}}`, 0, false},
		{`{"id":"s","action":"SYNC","args":{"url":"","messages":[ ],"time":1}}`, 0, false},
		{`{"id":"s","action":"SYNC","args":{"url":"","messages":[[1,2,"a,b]"]],"time":1}}`, 1, false},
		{`{"id":"s","action":"SYNC","args":{"url":"","messages":[[1,2,"q\"],["],[3,4,{"what":"users","joined":["x","y"]}],[5,6,"\\"]],"time":1}}`, 3, false},
		{`{"id":"s","action":"SYNC","args":{"url":"","messages":[[1,2,"a"}],"time":1}}`, 0, true},
		{`{"id":"s","action":"SYNC","args":{"url":"","messages":[[1,2,"a"]`, 0, true},
		{`{"id":"s","action":"SYNC","args":{}}`, 0, true},
	} {
		got, err := countSyncMessages([]byte(tc.frame))
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("countSyncMessages(%s) = %d, %v; want %d, error %v", tc.frame, got, err, tc.want, tc.bad)
		}
	}
}
