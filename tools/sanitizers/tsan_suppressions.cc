// ThreadSanitizer's suppressions for --config=tsan, compiled into every
// binary of that build with tsan_absl_mutex.cc (TSan asks for them through
// this hook, so no file has to be found at run time).
//
// Debian's gRPC, protobuf, RocksDB and Abseil are not built with TSan.
// (absl::Status copies its message and payloads inside libabsl_status, and
// gRPC carries a Status from the handler's thread to the one that sends it;
// OpenSSL's exit-time cleanup frees tables its hashing read on gRPC's
// threads, whose last request gRPC ordered before the exit.) What
// they do inside, including how they hand work from one thread to the next
// (atomics, combiners; RocksDB's memtable is read without locks), is
// invisible, so their frees, copies and socket reads look unordered with
// the memory our (instrumented) code and gRPC's inline templates touched on
// another thread. called_from_lib stops TSan checking
// the calls those libraries make into it (free, memcpy, recvmsg...); our own
// accesses, in callbacks those libraries run too, are still checked.
//
// libstdc++ is the same case one step removed: RocksDB (and gRPC) copy and
// append strings through its out-of-line string functions (a follower's
// WriteBatch appended by the leader of RocksDB's write group, a column
// family's name read by its flush thread), and those memcpy calls come
// from libstdc++, after a hand-over made with RocksDB's own atomics. The
// cost: TSan no longer checks the bytes our code copies through those
// functions; the string's pointer and length, read and written inline, are
// still checked. (operator new and delete are TSan's, not libstdc++'s:
// --config=tsan links its C++ runtime.)
//
// Memory RocksDB allocates and fills (a block read into its cache, snappy
// decompressing into it; memtable arena blocks) is then read by our code
// through an iterator's key and value, often on another thread: TSan sees
// the allocation (made through its operator new, from librocksdb) as a
// write by the filling thread and cannot see RocksDB's cache hand the block
// over. race:librocksdb.so drops a report one of whose accesses has a
// frame in RocksDB, which outside such an allocation happens only in
// RocksDB's own calls into TSan (ignored anyway): RocksDB calls none of our
// code. Abseil's deadlock detector (graphcycles) keeps one global graph
// behind its own spinlock, as invisible.
//
// race_top:/usr/include/grpcpp/ is gRPC's inline header code (compiled
// into our binaries, so instrumented) racing with itself: a batch's state
// (CallOpSet) or a callback tag (callback_common.h) written by one of
// gRPC's threads, read by another when the batch completes, handed over
// inside libgrpc. Only reports where an access's innermost frame is in
// those headers: our handlers, interceptors and callbacks, which that code
// calls, stay checked. race:InterceptorBatchMethodsImpl is the same for
// the interceptor batch gRPC passes between its threads (its std::function
// members, whose innermost frames are libstdc++'s): that one also covers
// what our metrics interceptor does inside it (plugin/metrics.cc: its own
// flag, ordered by gRPC, and RpcMetrics::Record, under an absl::Mutex that
// TSan sees everywhere else). race:ClearHookPoints is that batch's hook
// table, cleared with memset (so TSan's memset is the innermost frame) by
// the thread that completes a callback stream's read or write and by the
// one that starts the next (plugin/streaming_service.cc starts them from
// the thread that uses the stream, after OnReadDone/OnWriteDone said so).
// race:/usr/include/grpcpp/support/callback_common.h is a callback tag's
// std::function (libstdc++'s inline code innermost): read by the thread
// that runs a stream's last completion, destroyed by the one gRPC then
// runs OnDone on; the core orders the two.
//
// thread:libgpr.so is a thread gRPC itself starts and leaves to the
// process's exit (imagectl exits without waiting for gRPC's executor
// threads).
//
// race:tsan_absl_mutex.cc is the mutex word itself, as tsan_absl_mutex.cc
// reports its use: first locked inside gRPC on a thread other than the one
// that allocated it, with the hand-over invisible (as above). Not accesses
// to what a mutex guards.
extern "C" const char* __tsan_default_suppressions() {
  return
      "called_from_lib:libgrpc.so\n"
      "called_from_lib:libgrpc++.so\n"
      "called_from_lib:libgpr.so\n"
      "called_from_lib:libabsl_cord.so\n"
      "called_from_lib:libabsl_status.so\n"
      "called_from_lib:libcrypto.so\n"
      "called_from_lib:libabsl_graphcycles_internal.so\n"
      "called_from_lib:libsnappy.so\n"
      "called_from_lib:libprotobuf.so\n"
      "called_from_lib:librocksdb.so\n"
      "called_from_lib:libstdc++.so\n"
      "race:librocksdb.so\n"
      "race_top:/usr/include/grpcpp/\n"
      "race:InterceptorBatchMethodsImpl\n"
      "race:ClearHookPoints\n"
      "race:/usr/include/grpcpp/support/callback_common.h\n"
      "thread:libgpr.so\n"
      "race:tools/sanitizers/tsan_absl_mutex.cc\n";
}
