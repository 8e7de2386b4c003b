// Ctrl-C while the engine works: the first press aborts the work (the engine stops within one token
// or one prefill chunk and the command prints what it has); a second press exits at once.

export function abortOnInterrupt(controller: AbortController): () => void {
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  return () => process.off('SIGINT', onSigint);
}
