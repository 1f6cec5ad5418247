/* A guard around reads of HDF5 files users give.  libhdf5 itself crashes (SIGSEGV in its global
 * heap, stack smashing, free() of a bad pointer) or spins for minutes in its metadata cache on
 * some damaged files, whatever the caller checks first.  Inside the guard such a crash or a read
 * that makes no progress for RCTD_HDF5_TIMEOUT seconds (default 10) ends the process with one
 * line "rctd-TOOL: FILE: damaged HDF5 file: ...", exit status 1, and the registered temporary
 * outputs removed.  Outside the guard, signals keep their usual meaning.
 *
 * The guard costs a setitimer() per guarded read (blocks of thousands of values), nothing else:
 * the reading stays in this process. */
#ifndef RCTD_H5GUARD_H
#define RCTD_H5GUARD_H

/* Enters the guard for reads of PATH (nests: the outermost path is named). */
void rctd_h5_guard_enter(const char *path);
void rctd_h5_guard_leave(void);
/* Progress: restarts the no-progress clock (called before each HDF5 read). */
void rctd_h5_guard_tick(void);
/* The no-progress limit in seconds ($RCTD_HDF5_TIMEOUT, default 10). */
double rctd_h5_guard_timeout(void);

/* Keeps libhdf5 from closing at exit what is still open: after a failed write (a full disk) the
 * file whose close failed stays open, and libhdf5 crashes flushing it again at exit, after the
 * tool reported the failure (which removes its temporary output itself).  Every HDF5 output is
 * closed, and its close checked, before a tool exits.  Call before any other HDF5 function. */
void rctd_h5_no_teardown_at_exit(void);

#endif
