/*
 * transport-mpi.h — the ring's transport over MPI (transport.h), one rank per process or host.
 * Built only when CMake finds MPI (target ringkv_dist-mpi) and linked into the `ringkv` tool,
 * never into the library, which stays libc-only. mpi.h stays inside transport-mpi.c.
 *
 * How it talks. Exchanges are MPI_Isend / MPI_Irecv; allgather and broadcast are point-to-point
 * messages to and from every peer (not MPI_Iallgather / MPI_Ibcast), so that a wait that runs out
 * can name the rank it waited for. Every wait polls with MPI_Test and a sleep that grows from
 * 50 us to 1 ms, so a dead or stuck peer gives RK_ERR_IO after timeout_ms ("ring: rank 0 waited
 * 2000 ms for rank 1 in allgather (mpi transport); did it fail?") instead of a hang. After such
 * an error, a size mismatch or an MPI error the transport is broken: every later call returns the
 * same error. Messages over INT_MAX bytes are sent in 1 GiB units plus a remainder.
 *
 * Failure. rk_transport_fail prints "ringkv: rank R: <message>" to stderr and calls MPI_Abort:
 * Open MPI then ends every process of the job and mpirun reports which rank aborted. It does not
 * return. (The ranks blocked elsewhere could not be told reliably otherwise: one may be inside a
 * long compute step, another may be dead.) A rank whose process ends without MPI_Finalize is
 * likewise turned into the end of the whole job by Open MPI.
 *
 * Threads. MPI is initialised with MPI_THREAD_FUNNELED: only the thread that created the
 * transport may call it (the rank's own thread; compute pools do not touch MPI).
 */
#ifndef RK_DIST_MPI_TRANSPORT_MPI_H
#define RK_DIST_MPI_TRANSPORT_MPI_H

#include "dist/transport.h"

/* Creates this process's transport: initialises MPI (MPI_Init_thread, FUNNELED) unless the
 * caller already did, and talks over a duplicate of MPI_COMM_WORLD whose errors are returned,
 * not fatal. argc/argv are handed to MPI_Init_thread (may be NULL). *out belongs to the caller;
 * rk_transport_free finalises MPI when this call initialised it, so create at most one per
 * process. RK_ERR_IO when MPI cannot start or was already finalised. */
rk_status rk_transport_mpi_create(int *argc, char ***argv, rk_transport **out, rk_error *err);

/* 1 when the environment says this process was started by an MPI launcher (mpirun / mpiexec of
 * Open MPI, MPICH or a PMI/PMIx launcher), else 0. Reads environment variables, so only tools/
 * calls it (STYLE.md). */
int rk_transport_mpi_launched(void);

#endif
