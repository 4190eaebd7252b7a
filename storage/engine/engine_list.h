// The engines of ringstore, in preference order: the one list every other
// place takes them from (engine_selector.h's AllEngines(), BackendName, the
// server's --engine help, the engine, fault and store test suites; the
// Python tests ask the server).
//
// One line per engine: X(name, enumerator, factory), where `name` is what
// flags, responses and metadata call it, `enumerator` its Backend value
// (engine.h, equal to the proto's) and `factory` the function that starts
// it (declared in engine.h). "auto" starts the first line that works here;
// the lines after it that start too become its runtime fallback.
//
// A macro rather than an array so that BackendName (in the engine library,
// which the engines themselves depend on) can use the names without
// linking the factories, and so that the flag help can be one constant.
#ifndef RINGSTORE_STORAGE_ENGINE_ENGINE_LIST_H_
#define RINGSTORE_STORAGE_ENGINE_ENGINE_LIST_H_

#define RINGSTORE_ENGINE_LIST(X)                \
  X(io_uring, kIoUring, NewIoUringEngine)       \
  X(posix_aio, kPosixAio, NewPosixAioEngine)    \
  X(thread_pool, kThreadPool, NewThreadPoolEngine)

// ", io_uring, posix_aio, thread_pool": the names as one string literal,
// for text that must be a compile-time constant (an Abseil flag's help).
#define RINGSTORE_ENGINE_NAMES_LITERAL RINGSTORE_ENGINE_LIST(RINGSTORE_ENGINE_LIST_NAME_)
#define RINGSTORE_ENGINE_LIST_NAME_(name, enumerator, factory) ", " #name

#endif  // RINGSTORE_STORAGE_ENGINE_ENGINE_LIST_H_
