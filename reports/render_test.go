package reports
import ("os";"testing")
func TestRenderSample(t *testing.T) { f, _ := os.Create("/tmp/sample-report.html"); defer f.Close(); if err := HTML(f, sampleRun()); err != nil { t.Fatal(err) } }
