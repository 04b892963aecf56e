/* The emulator's NCCL, over MPI: exactly the nccl* calls src/dist/nccl.c makes, for libtrain_emu built with MPI
 * (tests/cuda/CMakeLists.txt). Each mpirun rank is one process with its own emulated GPU, whose "device" memory is
 * host memory, so a collective is the MPI collective on the same buffers. Prototypes come from the toolkit's nccl.h,
 * so a signature that drifts from NCCL's fails to compile. Test builds only, never linked into libtrain.so.
 *
 * What it models:
 *  - the unique id is bytes (a magic, the pid, a counter); ncclCommInitRankConfig checks the config and the id, then
 *    duplicates MPI_COMM_WORLD (MPI_Comm_idup), so nranks and rank must be the world's (the only case libtrain's
 *    tests have): anything else is ncclInvalidUsage with a message for ncclGetLastError;
 *  - blocking (config.blocking 1 or unset): every call completes before it returns. Non-blocking (0): init and every
 *    collective return ncclInProgress with their MPI operation posted (MPI_Iallreduce, MPI_Ibcast), and
 *    ncclCommGetAsyncError reports ncclInProgress until MPI_Test says it completed; a call while one is in progress is
 *    ncclInvalidUsage, as NCCL asks callers to wait. A peer that never joins leaves the operation in progress for
 *    ever, as a hung peer does on a GPU, which is what the caller's deadline is for;
 *  - ncclAllReduce: ncclSum, ncclMax, ncclMin, and ncclAvg (the sum, then multiplied by 1/nranks in the element type);
 *    f32 and f64, in place or not. ncclBroadcast: any of those types, in place or not. The stream argument is not
 *    used: emulated work completes when it is issued, here when MPI says so;
 *  - ncclCommAbort marks nothing but frees the handle: an operation in flight is abandoned (MPI cannot cancel a
 *    collective), and its duplicate communicator is left to MPI_Finalize;
 *  - failures on demand, for tests: LT_EMU_NCCL_FAIL="RANK:CALL:N" (CALL init, allreduce or broadcast) makes world
 *    rank RANK's N-th such call (from 1) fail asynchronously: it joins no MPI operation, returns ncclInProgress, and
 *    ncclCommGetAsyncError then reports ncclRemoteError, with "lt_emu: injected failure ..." from ncclGetLastError.
 *    The other ranks' operation never completes, as with a peer whose network died.
 *
 * Two runtime-API calls that only the NCCL path makes, which cuda/emu/runtime.cpp lacks, live here too:
 * cudaEventQuery (emulated work is complete once issued: cudaSuccess for any event) and cudaDeviceGetPCIBusId, which
 * names each process's device by its pid ("%04x:%02x:00.0"), so ranks never look as if they shared one GPU, unless
 * LT_EMU_SAME_GPU=1 makes every process report the same id (the test of the "two ranks on one GPU" check). */
#include <mpi.h>
#include <nccl.h>

#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>

struct ncclComm {
    MPI_Comm mpi = MPI_COMM_NULL;
    MPI_Request pending = MPI_REQUEST_NULL; // the operation in progress (non-blocking communicators)
    bool idup = false;                      // pending is the MPI_Comm_idup of init
    int rank = 0, nranks = 1;
    bool blocking = true;
    ncclResult_t async = ncclSuccess; // the state once nothing is pending
    std::string last;                 // ncclGetLastError
    // ncclAvg: the scaling that follows the sum, applied when the pending reduction completes
    void *avg_buf = nullptr;
    size_t avg_count = 0;
    ncclDataType_t avg_type = ncclFloat32;
};

namespace {

thread_local std::string g_last; // for ncclGetLastError(NULL) and failures before a communicator exists

constexpr char kMagic[16] = "lt_emu nccl id";

enum Call { kInit = 0, kAllReduce = 1, kBroadcast = 2 };
const char *call_name(Call c) {
    static const char *names[] = {"init", "allreduce", "broadcast"};
    return names[c];
}

ncclResult_t fail(ncclComm *comm, ncclResult_t r, const std::string &what) {
    std::string m = "lt_emu: " + what;
    if (comm) comm->last = m;
    g_last = m;
    return r;
}

int world_rank() {
    int inited = 0, rank = -1;
    MPI_Initialized(&inited);
    if (inited) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}

long g_calls[3]; // init, allreduce and broadcast calls of this process so far, for LT_EMU_NCCL_FAIL

// Whether this call is the one LT_EMU_NCCL_FAIL names (counting this process's calls of its kind).
bool injected(Call c) {
    long n = ++g_calls[c];
    const char *spec = getenv("LT_EMU_NCCL_FAIL");
    if (!spec || !*spec) return false;
    int rank = -1;
    long nth = 0;
    char what[32] = "";
    if (sscanf(spec, "%d:%31[a-z]:%ld", &rank, what, &nth) != 3) return false;
    return rank == world_rank() && strcmp(what, call_name(c)) == 0 && nth == n;
}

// The injected failure: nothing joins MPI, the caller sees ncclInProgress, then the error asynchronously.
ncclResult_t inject(ncclComm *comm, Call c) {
    comm->async = ncclRemoteError;
    comm->last = "lt_emu: injected failure of " + std::string(call_name(c)) + " #" + std::to_string(g_calls[c]) +
                 " on world rank " + std::to_string(world_rank()) + " (LT_EMU_NCCL_FAIL)";
    return comm->blocking ? ncclRemoteError : ncclInProgress;
}

bool mpi_type(ncclDataType_t t, MPI_Datatype *out, size_t *size) {
    switch (t) {
    case ncclFloat32: *out = MPI_FLOAT, *size = 4; return true;
    case ncclFloat64: *out = MPI_DOUBLE, *size = 8; return true;
    default: return false;
    }
}

std::string mpi_text(int rc) {
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, text, &len);
    return text;
}

// A communicator that may start an operation now: live, and nothing in progress.
ncclResult_t usable(ncclComm *comm, const char *fn) {
    if (!comm) return fail(nullptr, ncclInvalidArgument, std::string(fn) + ": comm is NULL");
    if (comm->pending != MPI_REQUEST_NULL)
        return fail(comm, ncclInvalidUsage,
                    std::string(fn) + ": called while an operation is in progress (poll ncclCommGetAsyncError first)");
    if (comm->async != ncclSuccess)
        return fail(comm, comm->async, std::string(fn) + ": the communicator has failed: " + comm->last);
    return ncclSuccess;
}

void apply_avg(ncclComm *comm) {
    if (!comm->avg_buf) return;
    if (comm->avg_type == ncclFloat64) {
        double *v = static_cast<double *>(comm->avg_buf), s = 1.0 / comm->nranks;
        for (size_t i = 0; i < comm->avg_count; i++) v[i] *= s;
    } else {
        float *v = static_cast<float *>(comm->avg_buf), s = 1.0f / static_cast<float>(comm->nranks);
        for (size_t i = 0; i < comm->avg_count; i++) v[i] *= s;
    }
    comm->avg_buf = nullptr;
}

// After the pending operation completed: the new communicator returns MPI errors, or the average is scaled.
void completed(ncclComm *comm) {
    if (comm->idup) MPI_Comm_set_errhandler(comm->mpi, MPI_ERRORS_RETURN);
    comm->idup = false;
    apply_avg(comm);
}

// Completes (blocking) or leaves in progress (non-blocking) the operation just posted; rc is the posting's result.
ncclResult_t posted(ncclComm *comm, int rc, const char *what) {
    if (rc != MPI_SUCCESS) {
        comm->pending = MPI_REQUEST_NULL;
        comm->async = ncclSystemError;
        return fail(comm, ncclSystemError, std::string(what) + " failed: " + mpi_text(rc));
    }
    if (!comm->blocking) return ncclInProgress;
    rc = MPI_Wait(&comm->pending, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
        comm->async = ncclSystemError;
        return fail(comm, ncclSystemError, std::string(what) + " failed: " + mpi_text(rc));
    }
    completed(comm);
    return ncclSuccess;
}

} // namespace

extern "C" {

const char *ncclGetErrorString(ncclResult_t result) {
    // NCCL's own texts, so that messages read the same in both builds.
    switch (result) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError: return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
    }
}

const char *ncclGetLastError(ncclComm_t comm) { return comm ? comm->last.c_str() : g_last.c_str(); }

ncclResult_t ncclGetVersion(int *version) {
    if (!version) return fail(nullptr, ncclInvalidArgument, "ncclGetVersion: version is NULL");
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
    static std::atomic<long> counter{0};
    if (!id) return fail(nullptr, ncclInvalidArgument, "ncclGetUniqueId: uniqueId is NULL");
    memset(id, 0, sizeof *id);
    memcpy(id->internal, kMagic, sizeof kMagic);
    long pid = static_cast<long>(getpid()), n = ++counter;
    memcpy(id->internal + sizeof kMagic, &pid, sizeof pid);
    memcpy(id->internal + sizeof kMagic + sizeof pid, &n, sizeof n);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRankConfig(ncclComm_t *out, int nranks, ncclUniqueId id, int rank, ncclConfig_t *config) {
    if (!out) return fail(nullptr, ncclInvalidArgument, "ncclCommInitRankConfig: comm is NULL");
    *out = nullptr;
    if (config && (config->magic != 0xcafebeef || config->size != sizeof(ncclConfig_t)))
        return fail(nullptr, ncclInvalidArgument,
                    "ncclCommInitRankConfig: config was not initialised with NCCL_CONFIG_INITIALIZER");
    if (memcmp(id.internal, kMagic, sizeof kMagic) != 0)
        return fail(nullptr, ncclInvalidArgument, "ncclCommInitRankConfig: not an id from ncclGetUniqueId");
    if (nranks < 1 || rank < 0 || rank >= nranks)
        return fail(nullptr, ncclInvalidArgument,
                    "ncclCommInitRankConfig: rank " + std::to_string(rank) + " of " + std::to_string(nranks));
    int inited = 0, wsize = 0, wrank = -1;
    MPI_Initialized(&inited);
    if (!inited)
        return fail(nullptr, ncclInvalidUsage, "ncclCommInitRankConfig: the emulator's NCCL runs over MPI: init MPI");
    MPI_Comm_size(MPI_COMM_WORLD, &wsize);
    MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
    if (nranks != wsize || rank != wrank)
        return fail(nullptr, ncclInvalidUsage,
                    "ncclCommInitRankConfig: the emulator's NCCL spans MPI_COMM_WORLD only: rank " +
                        std::to_string(rank) + " of " + std::to_string(nranks) + " must be the world's " +
                        std::to_string(wrank) + " of " + std::to_string(wsize));
    auto *comm = new ncclComm;
    comm->rank = rank;
    comm->nranks = nranks;
    comm->blocking = !config || config->blocking == NCCL_CONFIG_UNDEF_INT || config->blocking != 0;
    *out = comm;
    if (injected(kInit)) return inject(comm, kInit);
    comm->idup = true;
    return posted(comm, MPI_Comm_idup(MPI_COMM_WORLD, &comm->mpi, &comm->pending), "MPI_Comm_idup");
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *state) {
    if (!comm || !state) return fail(comm, ncclInvalidArgument, "ncclCommGetAsyncError: comm or state is NULL");
    if (comm->pending != MPI_REQUEST_NULL) {
        int done = 0;
        int rc = MPI_Test(&comm->pending, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            comm->pending = MPI_REQUEST_NULL;
            comm->async = ncclSystemError;
            fail(comm, ncclSystemError, "MPI_Test failed: " + mpi_text(rc));
        } else if (!done) {
            *state = ncclInProgress;
            return ncclSuccess;
        } else {
            completed(comm);
        }
    }
    *state = comm->async;
    return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t) {
    ncclResult_t r = usable(comm, "ncclAllReduce");
    if (r != ncclSuccess) return r;
    MPI_Datatype type;
    size_t size;
    if (!mpi_type(datatype, &type, &size))
        return fail(comm, ncclInvalidArgument, "ncclAllReduce: the emulator reduces ncclFloat32 and ncclFloat64 only");
    if (count > static_cast<size_t>(INT_MAX))
        return fail(comm, ncclInvalidArgument, "ncclAllReduce: the emulator's counts are MPI's ints");
    MPI_Op mop;
    switch (op) {
    case ncclSum:
    case ncclAvg: mop = MPI_SUM; break;
    case ncclMax: mop = MPI_MAX; break;
    case ncclMin: mop = MPI_MIN; break;
    default: return fail(comm, ncclInvalidArgument, "ncclAllReduce: the emulator models sum, avg, max and min");
    }
    if (count > 0 && (!sendbuff || !recvbuff)) return fail(comm, ncclInvalidArgument, "ncclAllReduce: NULL buffer");
    if (injected(kAllReduce)) return inject(comm, kAllReduce);
    if (op == ncclAvg) {
        comm->avg_buf = recvbuff;
        comm->avg_count = count;
        comm->avg_type = datatype;
    }
    const void *src = sendbuff == recvbuff ? MPI_IN_PLACE : sendbuff;
    return posted(comm, MPI_Iallreduce(src, recvbuff, static_cast<int>(count), type, mop, comm->mpi, &comm->pending),
                  "MPI_Iallreduce");
}

ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t) {
    ncclResult_t r = usable(comm, "ncclBroadcast");
    if (r != ncclSuccess) return r;
    MPI_Datatype type;
    size_t size;
    if (!mpi_type(datatype, &type, &size))
        return fail(comm, ncclInvalidArgument, "ncclBroadcast: the emulator sends ncclFloat32 and ncclFloat64 only");
    if (count > static_cast<size_t>(INT_MAX))
        return fail(comm, ncclInvalidArgument, "ncclBroadcast: the emulator's counts are MPI's ints");
    if (root < 0 || root >= comm->nranks)
        return fail(comm, ncclInvalidArgument, "ncclBroadcast: root " + std::to_string(root) + " out of range");
    if (count > 0 && (!recvbuff || (comm->rank == root && !sendbuff)))
        return fail(comm, ncclInvalidArgument, "ncclBroadcast: NULL buffer");
    if (injected(kBroadcast)) return inject(comm, kBroadcast);
    if (comm->rank == root && sendbuff != recvbuff && count > 0) memmove(recvbuff, sendbuff, count * size);
    return posted(comm, MPI_Ibcast(recvbuff, static_cast<int>(count), type, root, comm->mpi, &comm->pending),
                  "MPI_Ibcast");
}

ncclResult_t ncclCommFinalize(ncclComm_t comm) {
    ncclResult_t r = usable(comm, "ncclCommFinalize");
    if (r != ncclSuccess) return r;
    return comm->blocking ? ncclSuccess : ncclInProgress; // nothing is ever left to flush
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    if (!comm) return ncclSuccess;
    if (comm->pending != MPI_REQUEST_NULL)
        return fail(comm, ncclInvalidUsage, "ncclCommDestroy: an operation is in progress (use ncclCommAbort)");
    if (comm->mpi != MPI_COMM_NULL) MPI_Comm_free(&comm->mpi);
    delete comm;
    return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm) {
    if (!comm) return ncclSuccess;
    // An operation in flight cannot be cancelled: its request and communicator are abandoned to MPI_Finalize.
    if (comm->pending == MPI_REQUEST_NULL && comm->mpi != MPI_COMM_NULL) MPI_Comm_free(&comm->mpi);
    delete comm;
    return ncclSuccess;
}

// ---- runtime-API calls of the NCCL path that cuda/emu/runtime.cpp does not provide ----

cudaError_t cudaEventQuery(cudaEvent_t event) {
    return event ? cudaSuccess : cudaErrorInvalidResourceHandle; // emulated work is done once issued
}

cudaError_t cudaDeviceGetPCIBusId(char *pciBusId, int len, int device) {
    if (!pciBusId || len < 13) return cudaErrorInvalidValue;
    if (device != 0) return cudaErrorInvalidDevice; // the emulator has cuda:0 only
    const char *same = getenv("LT_EMU_SAME_GPU");
    unsigned pid = static_cast<unsigned>(getpid());
    if (same && *same && strcmp(same, "0") != 0) pid = 0;
    snprintf(pciBusId, static_cast<size_t>(len), "%04x:%02x:00.0", (pid >> 8) & 0xffffu, pid & 0xffu);
    return cudaSuccess;
}

} // extern "C"
