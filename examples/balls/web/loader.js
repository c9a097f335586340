"use strict";
// Starts the Go program (balls.wasm) with Go's wasm_exec.js glue. The program
// fills in window.metronome (see examples/balls/wasm/main.go); until then it
// says it is not ready.
window.metronome = { ready: false, error: null };

(async () => {
    const status = document.getElementById("status");
    try {
        const go = new Go();
        const response = fetch("balls.wasm");
        let result;
        try {
            result = await WebAssembly.instantiateStreaming(response, go.importObject);
        } catch (_) {
            // a server that does not send Content-Type: application/wasm
            const bytes = await (await fetch("balls.wasm")).arrayBuffer();
            result = await WebAssembly.instantiate(bytes, go.importObject);
        }
        status.textContent = "starting…";
        await go.run(result.instance);
        window.metronome.ready = false;
        status.textContent = "the program exited";
    } catch (error) {
        window.metronome.error = `loading balls.wasm failed: ${error}`;
        status.textContent = window.metronome.error;
        status.classList.add("error");
    }
})();
