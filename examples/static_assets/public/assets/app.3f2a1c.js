const { instance } = await WebAssembly.instantiateStreaming(fetch("/assets/add.wasm"));
document.getElementById("app").textContent = `route ${location.pathname}: 2 + 3 = ${instance.exports.add(2, 3)}`;
