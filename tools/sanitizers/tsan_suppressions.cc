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
      "called_from_lib:libprotobuf.so\n"
      "called_from_lib:librocksdb.so\n"
      "called_from_lib:libstdc++.so\n"
      "race:tools/sanitizers/tsan_absl_mutex.cc\n";
}
