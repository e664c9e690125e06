package proxy

import "testing"

// The per-query work the proxy does before sending: scanning and framing.
func BenchmarkPlanSimple(b *testing.B) {
	frame, n := frameSQL("erun_tenant", "01a20838-95b9-7132-9f03-3ff3d0e016bd")
	for _, sql := range []string{
		"SELECT project_id, name FROM projects WHERE name = $1",
		"BEGIN; INSERT INTO tasks (project_id, title) VALUES ('x', 'y'); COMMIT",
	} {
		b.Run(sql[:6], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				planSimple(sql, splitStatements(sql), false, frames{frame: frame, n: n})
			}
		})
	}
}
