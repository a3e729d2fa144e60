package api

// MaxIdleWorkers is the bound on parked pipeline workers, for the external tests.
const MaxIdleWorkers = maxIdleWorkers
