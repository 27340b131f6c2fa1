// A Java (JSSE) client calling a service with a latchkey key (docs/relying-parties.md).
//
// Usage: java JavaClient.java URL KEYSTORE.p12 TRUSTSTORE.p12
// with the stores' password in LATCHKEY_P12_PASSWORD. The keystore is
// `latchkey export --dir alice/ --p12 alice.p12`, the truststore
// `latchkey export --truststore truststore.p12`.
import java.io.FileInputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.security.KeyStore;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class JavaClient {
    public static void main(String[] args) throws Exception {
        char[] password = System.getenv("LATCHKEY_P12_PASSWORD").toCharArray();
        KeyStore keys = KeyStore.getInstance("PKCS12");
        try (FileInputStream in = new FileInputStream(args[1])) {
            keys.load(in, password);
        }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(keys, password);
        KeyStore trust = KeyStore.getInstance("PKCS12");
        try (FileInputStream in = new FileInputStream(args[2])) {
            trust.load(in, password);
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext tls = SSLContext.getInstance("TLS");
        tls.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        HttpClient client = HttpClient.newBuilder().sslContext(tls).build();
        try {
            HttpResponse<String> answer = client.send(
                    HttpRequest.newBuilder(URI.create(args[0])).build(),
                    HttpResponse.BodyHandlers.ofString());
            System.out.println(answer.statusCode());
            System.out.print(answer.body());
        } catch (java.io.IOException refused) {
            System.err.println(refused);
            System.exit(2);
        }
    }
}
