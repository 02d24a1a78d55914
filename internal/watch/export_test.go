package watch

// Recorder is told what each poll counted, run by run: the tests check which
// runs were counted, and how often.
type Recorder interface {
	Record(*Session, *Observation)
}

// NewRecorded returns a Watcher whose polls tell rec what they counted.
func NewRecorded(opts Options, rec Recorder) *Watcher {
	w := New(opts)
	w.observed = rec.Record
	return w
}
